"""The serving master of a one-worker layout never imports torch: it would hold ~200 MB of RSS that no worker
shares (container/serving.py). Checked in a fresh interpreter, through the steps ``serve`` takes before forking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from container.serving import nvidia_driver_present

REPO = Path(__file__).resolve().parents[2]

_MASTER_STEPS = """
import sys
from pathlib import Path
from container.serving import check_model_dir, cpu_count, fit_to_memory, gpu_count, prepare_metrics_dir
from container.serving import resolve_lanes, resolve_workers, torch_threads
from serve.memory import container_memory
from serve.settings import settings_from_env

settings = settings_from_env({{}})
check_model_dir(Path({model_dir!r}))
gpus, cpus = gpu_count(), cpu_count()
workers = resolve_workers(settings, gpus, cpus)
lanes = resolve_lanes(settings, workers, gpus, cpus)
settings = fit_to_memory(settings.with_workers(workers, lanes), True, container_memory())
prepare_metrics_dir()
torch_threads(settings, workers, cpus, lanes)
import container.gunicorn_app, serve.metrics
heavy = sorted(m for m in ("torch", "numpy", "flask") if m in sys.modules)
print(gpus, workers, lanes, heavy)
"""


@pytest.mark.skipif(nvidia_driver_present(), reason="with an NVIDIA driver the master counts GPUs through torch")
def test_the_master_lays_out_one_worker_without_importing_torch(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "model.pt").write_bytes(b"")
    code = _MASTER_STEPS.format(model_dir=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")})
    assert out.returncode == 0, out.stderr
    gpus, workers, lanes, heavy = out.stdout.split(" ", 3)
    assert (gpus, workers) == ("0", "1") and int(lanes) >= 1
    assert heavy.strip() == "[]", f"the master imported {heavy.strip()} before forking"


def test_no_driver_library_means_no_gpu():
    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    assert nvidia_driver_present(load=missing) is False
    assert nvidia_driver_present(load=lambda name: object()) is True
