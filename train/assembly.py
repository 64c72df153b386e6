"""The model side of a run: the network on its device, the optimizer, the schedule and their wrappers.

A hyperparameter such as ``learning_rate`` arrives here already typed (train/config.py) and meets the
optimizer in :func:`build_network`; the schedule reads the run's live progress (epoch length and planned
epochs may be decided later: train/schedule.py).
"""

from __future__ import annotations

import shutil

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.runtime import Runtime
from train import schedule
from train.checkpoint import Progress, Trainables
from train.ema import WeightAverage
from train.errors import UserError
from train.job import TrainJob


def _require_compiler() -> None:
    # Inductor generates C++ (CPU) or Triton kernels with a C launcher (GPU): both need a compiler,
    # which the slim runtime image does not carry. Fail before training, not at the first step.
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "g++", "clang")):
        raise UserError(
            "compile=true needs a C/C++ compiler for torch.compile, and none is installed in this image",
            "set compile=false, or rebuild the image with `--build-arg TORCH_COMPILE=1` (adds g++, torch headers)",
        )


def build_network(job: TrainJob) -> tuple[nn.Module, Runtime, torch.optim.Optimizer]:
    """The network (seeded: the same initial weights on every rank and every retry), its runtime, AdamW."""
    c = job.config
    torch.manual_seed(c.seed)
    network: nn.Module = job.family.build(job.arch).to(job.runtime.device)
    runtime = job.runtime.for_model(network, training=True)
    if runtime.channels_last:
        network = network.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(network.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
    return network, runtime, optimizer


def trainables(job: TrainJob, network: nn.Module, runtime: Runtime, optimizer: torch.optim.Optimizer,
               progress: Progress) -> Trainables:
    """Schedule, weight average and grad scaler around the network; the schedule follows ``progress``."""
    c = job.config
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor(
        c, lambda: progress.total_steps, lambda: schedule.warmup_steps(c, progress.steps_per_epoch),
        lambda: progress.plan_step))
    ema = WeightAverage(network, c.ema_decay) if c.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.needs_grad_scaler)
    return Trainables(network, optimizer, scheduler, scaler, ema)


def wrap_for_training(job: TrainJob, network: nn.Module, runtime: Runtime) -> nn.Module:
    """What the training step calls: DDP across processes, torch.compile when asked for."""
    model = network
    if job.dist.enabled:
        ids = [runtime.device.index] if runtime.is_cuda else None
        model = DistributedDataParallel(model, device_ids=ids)
    if job.config.compile:
        _require_compiler()
        return torch.compile(model)
    return model


def to_device(batch: dict[str, torch.Tensor], runtime: Runtime) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        value = value.to(runtime.device, non_blocking=True)
        if runtime.channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
