"""Device, precision and memory layout: decided here, once, for training and serving alike."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from model.cpus import available_cpus
from model.precision import PRECISIONS

#: Memory layout measured on 2-core CPUs (torch 2.13, 128 px, batch 16). Inference: channels_last ~1.8x
#: NCHW at 1.9 M parameters. Training in float32 on one machine: 1.3x at 1.8 M parameters but 0.7x at
#: 7.2 M (wider layers favoured NCHW's kernels there); training under bf16 autocast on an AVX512-BF16
#: machine: 1.9x, 1.4x and 1.3x at 1.8, 4.1 and 7.2 M parameters. On GPUs it is the tensor-core layout.
#: So: always on GPUs, for CPU inference and for bf16 CPU training; float32 CPU training up to this many
#: parameters.
CPU_TRAINING_CHANNELS_LAST_MAX_PARAMETERS = 4_000_000


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    #: dtype for autocast, or None to run in float32.
    amp_dtype: torch.dtype | None
    #: True/False, or None for "decide per network and direction" (see ``for_model``).
    channels_last: bool | None

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

    def for_model(self, model: nn.Module, *, training: bool) -> Runtime:
        """This runtime with the layout decided for ``model``: the one place layout is chosen."""
        if self.channels_last is not None:
            return self
        if self.is_cuda or not training or self.amp_dtype is torch.bfloat16:
            return dataclasses.replace(self, channels_last=True)
        parameters = sum(p.numel() for p in model.parameters())
        return dataclasses.replace(self, channels_last=parameters <= CPU_TRAINING_CHANNELS_LAST_MAX_PARAMETERS)

    def for_inference(self) -> Runtime:
        """This runtime as a CPU endpoint runs the same network by default: float32 (``auto`` picks bf16 for CPU
        training only), so predictions made after training match its answers. GPU runtimes are kept as trained."""
        return self if self.is_cuda else dataclasses.replace(self, amp_dtype=None)

    def describe(self) -> str:
        dtype = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "float32"
        name = torch.cuda.get_device_name(self.device) if self.is_cuda else "cpu"
        layout = "auto" if self.channels_last is None else self.channels_last
        return f"device={self.device} ({name}) precision={dtype} channels_last={layout}"


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


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX tiles).

    Elsewhere (AVX2, or AVX-512 without BF16: Skylake/Cascade Lake/Ice Lake servers) oneDNN emulates
    bf16 and autocast runs slower than float32.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except RuntimeError:  # a torch build without the CPU feature probes
        return False


def select_runtime(
    precision: str = "auto",
    device: str | None = None,
    channels_last: bool | str | None = "auto",
    cpu_threads: int | None = None,
    *,
    training: bool = False,
) -> Runtime:
    """Pick device and precision and configure torch for them.

    ``auto`` precision means bf16 autocast on GPUs that support it, fp16 (with a grad scaler) on
    older GPUs. On CPU it means bf16 autocast for training where the CPU has native bf16 (the U-Net's
    training step measured 94.7 against 43.5 images/s in float32 on an AVX512-BF16 2-core CPU, and a 10-minute
    budget then reached 14.1 instead of 18.4 degrees on held-out scenes), else float32; CPU inference stays float32.
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
            precision = "bf16" if training and cpu_has_native_bf16() else "fp32"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(device=dev, amp_dtype=amp, channels_last=_layout(channels_last))


def _layout(value: bool | str | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    choice = {"auto": None, "true": True, "false": False}.get(str(value).lower(), "bad")
    if choice == "bad":
        raise ValueError(f"channels_last {value!r} is not one of auto, true, false")
    return choice
