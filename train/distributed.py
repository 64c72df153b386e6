"""The process group, when there is one: rank bookkeeping and the few collectives training needs.

A single process is a world of size 1 and every helper is a no-op, so the loop has one code path.
Processes are started by torchrun (see container/training.py), which sets RANK, WORLD_SIZE, LOCAL_RANK.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: Processes on this host (torchrun's LOCAL_WORLD_SIZE). Host-local data (ShardedByS3Key channels,
    #: Pipe streams) is split across the host's processes only; replicated data across the whole world.
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    def all_reduce_max(self, value: int, device: torch.device) -> int:
        """The largest ``value`` over all ranks (e.g. steps per epoch when hosts hold unequal shards)."""
        if not self.enabled:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=device)
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return int(t.item())

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on any rank (so all ranks stop at the same step)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()


def init_from_env(timeout_s: float) -> Dist:
    """Join the process group torchrun prepared, if any (NCCL on GPUs, gloo on CPU).

    ``timeout_s``: a rank blocked in one collective (all_reduce, barrier) longer than this fails instead of
    hanging; the usual cause is a peer that died or stalled (BYOC_COLLECTIVE_TIMEOUT_S, train/settings.py).
    torchrun's own variables (RANK, WORLD_SIZE, ...) are read here, where the group is joined.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, local_world_size=local_world_size)


def shutdown(dist: Dist) -> None:
    if dist.enabled and torch_dist.is_initialized():
        torch_dist.barrier()  # nobody tears the group down while a peer still uses it
        torch_dist.destroy_process_group()
