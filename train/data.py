"""Channels to data loaders: the validation split, deterministic sharded shuffling, loader settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from model.cpus import available_cpus
from model.family import DataFormatError, ModelFamily
from train.config import TrainConfig
from train.datacheck import UserFacingLoader, as_user_error
from train.errors import UserError


@dataclass(frozen=True)
class Splits:
    train: Sequence[Any]
    validation: Sequence[Any]
    test: Sequence[Any]
    validation_source: str  # "channel", "held out N of train" or "none"


def _index(family: ModelFamily, name: str, directory: Path) -> Sequence[Any]:
    if not directory.is_dir():
        raise UserError(f"channel {name!r} directory {directory} does not exist", f"provide the {name} channel")
    if not any(directory.iterdir()):
        raise UserError(
            f"channel {name!r} at {directory} is empty",
            f"check the S3 prefix given for the {name} channel (it must contain images/ and normals/)",
        )
    try:
        return family.index(directory)
    except DataFormatError as exc:
        raise UserError(f"channel {name!r} is not in the expected format: {exc}",
                        "lay the channel out as the README's 'Dataset format' section describes") from None


def load_splits(family: ModelFamily, channels: dict[str, Path], config: TrainConfig) -> Splits:
    if "train" not in channels:
        raise UserError(
            f"no 'train' channel (channels given: {sorted(channels) or 'none'})",
            "pass a channel named 'train' (or set synthetic_samples for the built-in demo data)",
        )
    train = list(_index(family, "train", channels["train"]))
    test = list(_index(family, "test", channels["test"])) if "test" in channels else []
    if "validation" in channels:
        return Splits(train, list(_index(family, "validation", channels["validation"])), test, "channel")
    n_val = round(len(train) * config.validation_fraction)
    if config.validation_fraction > 0 and len(train) >= 2:
        n_val = min(max(n_val, 1), len(train) - 1)
    if n_val == 0:
        return Splits(train, [], test, "none")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed)).tolist()
    held = set(order[:n_val])
    return Splits(
        [s for i, s in enumerate(train) if i not in held],
        [s for i, s in enumerate(train) if i in held],
        test,
        f"held out {n_val} of train",
    )


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, optionally skipping samples already seen.

    Every rank computes the same permutation and takes every world_size-th index (padding by wrapping
    so all ranks run the same number of steps, which DDP requires). ``per_rank`` fixes how many indices
    each rank yields (default ``ceil(length / world_size)``): with host-local shards (ShardedByS3Key) the
    hosts hold different amounts of data, and every rank pads to the global maximum.
    """

    def __init__(self, length: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0,
                 world_size: int = 1, skip: int = 0, per_rank: int | None = None) -> None:
        self.length, self.seed, self.epoch, self.shuffle = length, seed, epoch, shuffle
        self.rank, self.world_size, self.skip = rank, world_size, skip
        self.per_rank = per_rank

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        per_rank = math.ceil(self.length / self.world_size) if self.per_rank is None else self.per_rank
        if not order:
            return []
        padded = (order * math.ceil(per_rank * self.world_size / len(order)))[: per_rank * self.world_size]
        return padded[self.rank :: self.world_size][self.skip :]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def make_loader(dataset: Any, sampler: Sampler, batch_size: int, config: TrainConfig, pin: bool,
                preload: Callable[[], bool] | None = None) -> DataLoader:
    """A loader over ``dataset``; ``preload`` is the dataset's declared ``dataset_preload`` hook, if any.

    Samples are decoded once, here in this process, whenever they fit in memory, so every later epoch and any
    forked worker reads them from there. Workers: ``data_workers`` when set; else, once the data is in memory,
    none on CPU (an item costs ~0.3 ms against ~0.2 s per training step on two cores: workers would only add
    copies and compete for those cores) and up to 3 for a GPU (``pin``: there the step waits for the host's
    cropping and jitter, and 3 forked workers on 4 cores of an H200 host trained 678 instead of 555 images/s);
    else min(4, CPUs) to decode files in parallel.
    """
    try:
        in_memory = preload is not None and preload()
    except DataFormatError as exc:  # damage inside the pixels shows first here: the user's data, not our bug
        raise as_user_error(exc) from None
    workers = config.data_workers
    if workers < 0:
        cpus = available_cpus()
        workers = min(4, cpus) if not in_memory else min(3, cpus - 1) if pin else 0
    # A UserFacingLoader: data problems in any worker process fail the job as UserErrors naming the file.
    return UserFacingLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=False,
        prefetch_factor=4 if workers else None,
    )
