"""Which samples each process sees: splits per channel and input mode, and each rank's share of them.

Replicated channels (FullyReplicated) are split over every process of the job; host-local data
(ShardedByS3Key, or a Pipe stream already split by host) only over the processes of one host.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from model.family import ModelFamily, family_path
from train.config import TrainConfig
from train.data import Splits, load_splits
from train.datacheck import check_splits
from train.distributed import Dist
from train.errors import UserError
from train.stream import PipeChannel, read_all

if TYPE_CHECKING:
    from train.job import TrainPaths


class DataScope:
    def __init__(self, family: ModelFamily, paths: TrainPaths, config: TrainConfig, dist: Dist,
                 pipe_timeout_s: float) -> None:
        self.family, self.paths, self.config, self.dist = family, paths, config, dist
        self.pipe_timeout_s = pipe_timeout_s
        self.streaming = "train" in paths.pipe
        if self.streaming and dist.local_world_size > 1:
            raise UserError("a Pipe-mode train channel is read by one process per host, but this host runs "
                            f"{dist.local_world_size}", "unset BYOC_PROCESSES_PER_HOST or use File/FastFile mode")

    def shard_of(self, channel: str) -> tuple[int, int]:
        """(rank, world) to split a channel's local samples over: the host's processes for host-local data
        (ShardedByS3Key, or a Pipe stream already split by host), all processes for replicated data."""
        d, paths = self.dist, self.paths
        if channel in paths.sharded or channel in paths.pipe:
            return d.local_rank, d.local_world_size
        return d.rank, d.world_size

    def holds_records(self, split: str) -> bool:
        """Whether a split's samples are Pipe-mode records (read into memory) rather than the family's files:
        those of a Pipe channel, and validation held out of a Pipe-mode train stream."""
        pipe = self.paths.pipe
        return split in pipe or (split == "validation" and "train" in pipe and "validation" not in self.paths.channels)

    def load_splits(self) -> Splits:
        """The splits, after every file in them passed the family's data check (train/datacheck.py)."""
        splits = self._splits()
        # Every rank checks every file it will read, so all fail alike before the first collective step.
        check_splits(self.family, splits.train, splits.validation, splits.test)
        return splits

    def _splits(self) -> Splits:
        c, family = self.config, self.family
        channels, pipe = self.paths.channels, self.paths.pipe
        if pipe and not family.spec.has("sample_from_record"):
            raise UserError(f"channel(s) {sorted(pipe)} use Pipe input mode, which the model family "
                            f"{family_path(family)} cannot read", "use File or FastFile input mode")
        for name in pipe - {"train"}:  # non-train Pipe channels are small: one pass into memory
            if self.dist.local_world_size > 1:
                raise UserError(f"Pipe-mode channel {name!r} is read by one process per host, but this host runs "
                                f"{self.dist.local_world_size}", "use File/FastFile mode or one process per host")
        piped = {name: read_all(PipeChannel(channels[name], self.pipe_timeout_s), self.pipe_shard(name))
                 for name in sorted(pipe - {"train"})}
        files = {k: v for k, v in channels.items() if k not in pipe}
        if "train" in pipe:
            validation = piped.get("validation")
            if validation is None and "validation" in files:
                validation = list(load_splits(family, {"train": files["validation"]},
                                              dataclasses.replace(c, validation_fraction=0.0)).train)
            test = piped.get("test")
            if test is None and "test" in files:
                test = list(load_splits(family, {"train": files["test"]},
                                        dataclasses.replace(c, validation_fraction=0.0)).train)
            source = "channel" if validation is not None else (
                f"held out {c.validation_fraction:g} of the stream by key" if c.validation_fraction > 0 else "none")
            return Splits([], validation or [], test or [], source)
        config = dataclasses.replace(c, validation_fraction=0.0) if "validation" in piped else c
        splits = load_splits(family, files, config)
        if piped:
            splits = dataclasses.replace(
                splits, validation=piped.get("validation", splits.validation), test=piped.get("test", splits.test),
                validation_source="channel" if "validation" in piped else splits.validation_source)
        return splits

    def pipe_shard(self, channel: str) -> tuple[int, int]:
        """Which records of a pass this host keeps: its share of a replicated stream, all of its own shard."""
        d = self.dist
        if channel in self.paths.sharded:
            return 0, 1
        return d.rank // max(d.local_world_size, 1), max(d.world_size // max(d.local_world_size, 1), 1)
