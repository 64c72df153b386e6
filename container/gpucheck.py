"""Fail fast when the host's NVIDIA driver is too old for the CUDA build of torch in this image.

A CUDA build newer than the driver supports only fails at the first CUDA call, deep in model loading, with
an error that does not name the driver. SageMaker's real-time endpoints default to driver 470 (CUDA 11.4) on
g4dn, g5 and p4d and 535 (CUDA 12.2) on p5 and g6; ``InferenceAmiVersion=al2-ami-sagemaker-inference-gpu-3-1``
gives 550 (CUDA 12.4). Through CUDA minor-version compatibility a CUDA 12.x build runs on any driver from
525.60.13, an 11.x build from 450.80.02, a 13.x build from 580.65.06 (NVIDIA's CUDA compatibility guide).

Detection reads files only (torch's version.py, /proc/driver/nvidia/version) so the check costs nothing and
initialises no CUDA context before gunicorn forks.
"""

from __future__ import annotations

import importlib.machinery
import re
import sys
from pathlib import Path

#: CUDA major version of the build -> the oldest Linux driver that runs it (minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
#: The newest SageMaker inference AMI we know of and its driver.
INFERENCE_AMI, INFERENCE_AMI_DRIVER = "al2-ami-sagemaker-inference-gpu-3-1", "550.90.07"
_PROC_VERSION = Path("/proc/driver/nvidia/version")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def torch_cuda_version() -> str | None:
    """``torch.version.cuda`` of the installed torch without importing it; None for a CPU build."""
    spec = importlib.machinery.PathFinder.find_spec("torch")  # searches sys.path; never imports
    if spec is None or not spec.submodule_search_locations:
        return None
    version_file = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        match = re.search(r"^cuda\s*(?::\s*\S+\s*)?=\s*['\"]([\d.]+)['\"]", version_file.read_text(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def host_driver_version(proc_file: Path = _PROC_VERSION) -> str | None:
    """The NVIDIA kernel driver's version as the host exposes it to the container; None without a GPU."""
    try:
        match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)", proc_file.read_text())
    except OSError:
        return None
    return match.group(1) if match else None


def driver_problem(cuda: str | None, driver: str | None) -> str | None:
    """One line naming the driver found, the one needed and the fix; None when they fit (or no GPU/CPU build)."""
    if not cuda or not driver:
        return None
    needed = MIN_DRIVER.get(_version_tuple(cuda)[0])
    if needed is None or _version_tuple(driver) >= _version_tuple(needed):
        return None
    if _version_tuple(INFERENCE_AMI_DRIVER) >= _version_tuple(needed):
        fix = (f"on SageMaker endpoints set the production variant's InferenceAmiVersion={INFERENCE_AMI} (driver "
               f"{INFERENCE_AMI_DRIVER.split('.')[0]}), or build the image with a torch for an older CUDA")
    else:  # no inference AMI we know ships a driver this new
        fix = (f"build the image with a torch for CUDA 12 (runs on drivers >= {MIN_DRIVER[12]}; e.g. from "
               f"https://download.pytorch.org/whl/cu126), or run on hosts with driver >= {needed}")
    return (f"host NVIDIA driver {driver} is older than {needed}, which this image's torch (built for CUDA {cuda}) "
            f"needs. Fix: {fix}")


def exit_if_driver_too_old(command: str) -> None:
    """Stop ``train``/``serve`` at once on a too-old driver: train writes the failure file (exit 1), serve exits 2."""
    problem = driver_problem(torch_cuda_version(), host_driver_version())
    if problem is None:
        return
    print(f"cannot {command}: {problem}", file=sys.stderr, flush=True)
    if command == "train":
        from container.jobtree import JobTree
        from train.settings import base_dir

        JobTree(base_dir()).write_failure(f"UserError: {problem}")
        sys.exit(1)
    sys.exit(2)
