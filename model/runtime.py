"""Device, precision and memory layout: decided here, once, for training and serving alike."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # mirrored by train.config.PRECISIONS


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    #: dtype for autocast, or None to run in float32.
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def needs_grad_scaler(self) -> bool:
        return self.amp_dtype is torch.float16

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        dtype = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "float32"
        name = torch.cuda.get_device_name(self.device) if self.is_cuda else "cpu"
        return f"device={self.device} ({name}) precision={dtype} channels_last={self.channels_last}"


def cuda_fallback_note() -> str | None:
    """One line for the log when a CUDA build of torch finds no GPU and runs on the CPU, else None.

    The GPU image is meant for GPU instances, but it must still work (slowly) on a laptop or a CPU
    instance; saying so once, at start, keeps a missing ``--gpus all`` from passing unnoticed.
    """
    if torch.version.cuda is None or torch.cuda.is_available():
        return None
    return (f"this image has torch {torch.__version__} built for CUDA {torch.version.cuda}, but no NVIDIA GPU is "
            "visible: running on the CPU. Fix, if a GPU was meant: an instance type with a GPU, or `docker run "
            "--gpus all` with the NVIDIA container toolkit.")


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def select_runtime(
    precision: str = "auto",
    device: str | None = None,
    channels_last: bool = True,
    cpu_threads: int | None = None,
) -> Runtime:
    """Pick device and precision and configure torch for them.

    ``auto`` precision means bf16 autocast on GPUs that support it, fp16 (with a grad scaler) on
    older GPUs, and float32 on CPU, where bf16 autocast is usually slower than float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            torch.cuda.set_device(dev)
        # TF32 keeps float32 range with tensor-core speed for the remaining fp32 matmuls/convs.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:
        torch.set_num_threads(cpu_threads or available_cpus())
        if precision == "auto":
            precision = "fp32"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(device=dev, amp_dtype=amp, channels_last=channels_last)
