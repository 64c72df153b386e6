"""How training data reaches the loop, one strategy per input mode of the ``train`` channel.

* :class:`FileFeed` (File and FastFile: a directory, listed once): the epoch length is known up front;
  every epoch is a seeded permutation split over the ranks, resumable mid-epoch by skipping samples.
* :class:`PipeFeed` (Pipe: one FIFO per pass, train/stream.py): the epoch length is learned in the first
  pass; validation held out of the stream is collected while reading it; the epoch ends for every rank
  when the shortest stream ends.

The loop asks both the same things: a loader for an epoch, whether the epoch is over, and what the epoch
taught (:meth:`after_epoch`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import torch

from model.family import check_dataset_hooks
from train.checkpoint import Progress
from train.config import crop_side
from train.data import EpochSampler, Splits, make_loader
from train.errors import UserError
from train.job import TrainJob
from train.scope import DataScope
from train.stream import PipeChannel, RecordDataset, StreamDataset

log = logging.getLogger(__name__)


class FileFeed:
    #: The epoch length comes from the file listing, so a checkpoint's copy of it is not needed.
    learns_epoch_length = False

    def __init__(self, job: TrainJob, scope: DataScope, splits: Splits, device: torch.device) -> None:
        if not splits.train:
            raise UserError("the training split is empty after holding out validation data",
                            "add training samples or lower validation_fraction")
        self.job, self.scope, self.splits, self.device = job, scope, splits, device
        c = job.config
        # Samples per rank and epoch: the same on every rank (DDP needs equal step counts), the largest
        # any rank needs when hosts hold shards of different sizes; smaller shards wrap around.
        _, world = scope.shard_of("train")
        self.per_rank = job.dist.all_reduce_max(math.ceil(len(splits.train) / world), device)
        self.steps_per_epoch = math.ceil(self.per_rank / c.batch_size)
        self.train_data = job.family.dataset(splits.train, image_size=c.image_size, augment=c.augment, seed=c.seed)
        check_dataset_hooks(job.family.spec, self.train_data)
        side = crop_side(c, job.family.spec.input_multiple(job.arch))
        if job.family.spec.has("dataset_crop") and side < c.image_size:
            self.train_data.set_crop(side)

    def describe(self) -> str:
        return str(len(self.splits.train))

    def loader(self, epoch: int, skip: int) -> Any:
        c = self.job.config
        if self.job.family.spec.has("dataset_set_epoch"):
            self.train_data.set_epoch(epoch)
        rank, world = self.scope.shard_of("train")
        sampler = EpochSampler(len(self.splits.train), seed=c.seed, epoch=epoch, shuffle=True, rank=rank,
                               world_size=world, skip=skip, per_rank=self.per_rank)
        return make_loader(self.train_data, sampler, c.batch_size, c, pin=self.device.type == "cuda",
                           preload=declared_preload(self.job, self.train_data))

    def epoch_over(self, batch: Any) -> bool:
        return batch is None

    def after_epoch(self, progress: Progress, start_step: int, whole_epoch: bool) -> None:
        """Nothing to learn: the listing said it all."""


class PipeFeed:
    learns_epoch_length = True

    def __init__(self, job: TrainJob, scope: DataScope, splits: Splits, device: torch.device) -> None:
        self.job, self.scope, self.splits, self.device = job, scope, splits, device
        c = job.config
        self.steps_per_epoch = 0  # learned in the first pass
        self.train_data = StreamDataset(
            job.family, PipeChannel(job.paths.channels["train"], job.settings.pipe_timeout_s),
            shard=scope.pipe_shard("train"), image_size=c.image_size, augment=c.augment, seed=c.seed,
            validation_fraction=0.0 if splits.validation_source == "channel" else c.validation_fraction)

    def describe(self) -> str:
        return "Pipe stream"

    def loader(self, epoch: int, skip: int) -> Any:
        self.train_data.set_epoch(epoch, skip=skip)
        # A FIFO has one reader: records are decoded in this process, no loader workers.
        return torch.utils.data.DataLoader(self.train_data, batch_size=self.job.config.batch_size, num_workers=0,
                                           pin_memory=self.device.type == "cuda")

    def epoch_over(self, batch: Any) -> bool:
        # Streams of different lengths: the epoch ends for every rank when the first one runs dry.
        return self.job.dist.any(batch is None, self.device)

    def after_epoch(self, progress: Progress, start_step: int, whole_epoch: bool) -> None:
        """Learn the epoch length from a whole first pass; take the validation records it held out."""
        if not progress.total_steps and whole_epoch:
            progress.steps_per_epoch = progress.step - start_step  # equal on all ranks (see epoch_over)
            log.info("Pipe stream: %d steps per epoch; learning-rate schedule over %d steps",
                     progress.steps_per_epoch, progress.total_steps)
        if self.splits.validation_source.startswith("held out"):
            self.splits = dataclasses.replace(self.splits, validation=self.train_data.held_out)
        if progress.step == start_step and whole_epoch and not self.job.dist.enabled:
            raise UserError("the Pipe-mode train stream held no training records",
                            "check the channel's S3 prefix and the record format in the README")


def make_feed(job: TrainJob, scope: DataScope, splits: Splits, device: torch.device) -> FileFeed | PipeFeed:
    return (PipeFeed if scope.streaming else FileFeed)(job, scope, splits, device)


def eval_dataset(job: TrainJob, scope: DataScope, samples: Any, split: str) -> Any:
    """The dataset for evaluating a split: records held in memory (a Pipe channel, or validation held out
    of a Pipe stream) or the family's own dataset of files, as the channel's input mode says."""
    c = job.config
    if scope.holds_records(split):
        return RecordDataset(job.family, list(samples), image_size=c.image_size, seed=c.seed)
    dataset = job.family.dataset(samples, image_size=c.image_size, augment=False, seed=c.seed)
    check_dataset_hooks(job.family.spec, dataset)
    return dataset


def declared_preload(job: TrainJob, dataset: Any) -> Any:
    """The family dataset's declared ``preload`` (None for Pipe records and families without the hook)."""
    declared = job.family.spec.has("dataset_preload") and not isinstance(dataset, RecordDataset)
    return dataset.preload if declared else None
