"""Pipe input mode: records streamed from SageMaker's per-epoch FIFOs, model-agnostic.

In Pipe mode a channel is not a directory: SageMaker creates FIFOs ``/opt/ml/input/data/<channel>_0``,
``<channel>_1``, ... and streams the channel's S3 objects (concatenated) into one FIFO per pass. We read
each pass once, to EOF, then open the next one (it may not exist yet: poll).

Record format (documented in the README): the stream is a tar archive (or several concatenated ones);
consecutive members whose path up to the first dot of the file name is equal form one record, keyed by
that path (``scene_001.png`` + ``scene_001.normals.png`` -> key ``scene_001``, files ``png`` and
``normals.png``). The model family turns one record into a training item (``sample_from_record``).

Sharding: on a FullyReplicated channel every host streams everything, so host ``r`` of ``n`` keeps records
``i % n == r``; on a ShardedByS3Key channel each host keeps all of its own shard. Validation held out of a
streamed ``train`` channel is chosen by a stable hash of the record key and kept in memory (encoded bytes)
for the end-of-epoch evaluation; use a ``validation`` channel for large validation sets.
"""

from __future__ import annotations

import hashlib
import logging
import random
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, IterableDataset

from model.family import DataFormatError, ModelFamily
from train.errors import UserError

log = logging.getLogger(__name__)

SHUFFLE_BUFFER = 256


@dataclass(frozen=True)
class Record:
    key: str
    files: dict[str, bytes]


def _split_name(name: str) -> tuple[str, str]:
    head, _, base = name.rpartition("/")
    stem, dot, rest = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (rest if dot else "")


def iter_records(stream) -> Iterator[Record]:
    """Group consecutive tar members by key; works on a non-seekable stream (``r|*``)."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            key, files = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                member_key, suffix = _split_name(member.name)
                if member_key.rpartition("/")[2].startswith("."):
                    continue  # hidden files (e.g. macOS ._ resource forks)
                if member_key != key and key is not None:
                    yield Record(key, files)
                    files = {}
                key = member_key
                handle = tar.extractfile(member)
                files[suffix] = handle.read() if handle else b""
            if key is not None:
                yield Record(key, files)
    except tarfile.TarError as exc:
        raise UserError(f"a Pipe-mode stream is not a tar archive ({exc})",
                        "upload the channel as tar shards as the README's 'Pipe mode record format' says") from None


def is_held_out(key: str, fraction: float, seed: int) -> bool:
    """Stable validation hold-out by record key (same answer on every host, epoch and restart)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class PipeChannel:
    """The FIFOs of one channel: each :meth:`open_next` opens the next ``<channel>_<n>`` once it exists,
    waiting up to ``timeout_s`` for it (BYOC_PIPE_TIMEOUT_S, train/settings.py)."""

    def __init__(self, base: Path, timeout_s: float) -> None:
        self.base = base
        self.opened = 0
        self.timeout_s = timeout_s

    def path(self, n: int) -> Path:
        return self.base.with_name(f"{self.base.name}_{n}")

    def open_next(self):
        path = self.path(self.opened)
        deadline = time.monotonic() + self.timeout_s
        while not path.exists():
            if time.monotonic() > deadline:
                raise UserError(f"Pipe-mode FIFO {path} did not appear within {self.timeout_s:.0f} s",
                                "check that the channel's input mode is Pipe and its S3 prefix holds data")
            time.sleep(0.1)
        if not stat.S_ISFIFO(path.stat().st_mode) and not path.is_file():
            raise UserError(f"{path} is neither a FIFO nor a file", "use Pipe input mode only for S3 channels")
        self.opened += 1
        log.info("reading %s", path)
        return open(path, "rb", buffering=1 << 20)


def read_pass(channel: PipeChannel, shard: tuple[int, int]) -> Iterator[tuple[int, Record]]:
    """One full pass (one FIFO) as (record number, record), keeping this host's share."""
    rank, world = shard
    with channel.open_next() as stream:
        for i, record in enumerate(iter_records(stream)):
            if i % world == rank:
                yield i, record


class RecordDataset(Dataset):
    """Map-style over records held in memory (Pipe-mode validation)."""

    def __init__(self, family: ModelFamily, records: list[Record], image_size: int, seed: int) -> None:
        self.family, self.records, self.image_size, self.seed = family, records, image_size, seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r = self.records[index]
        return _item(self.family, r, image_size=self.image_size, augment=False, seed=self.seed, epoch=0, index=index)


def _item(family: ModelFamily, record: Record, **kwargs) -> dict[str, Any]:
    try:
        return family.sample_from_record(record.files, record.key, **kwargs)
    except DataFormatError as exc:
        raise UserError(f"Pipe-mode record is not in the expected format: {exc}",
                        f"write records as {family.spec.record_format}") from None


class StreamDataset(IterableDataset):
    """One pass over a Pipe channel per epoch: this host's records, shuffled through a buffer.

    Iterated in the training process itself (DataLoader num_workers=0): a FIFO has exactly one reader.
    Records held out for validation are collected in ``held_out`` during the pass.
    """

    def __init__(self, family: ModelFamily, channel: PipeChannel, *, shard: tuple[int, int], image_size: int,
                 augment: bool, seed: int, validation_fraction: float, buffer: int = SHUFFLE_BUFFER) -> None:
        self.family, self.channel, self.shard = family, channel, shard
        self.image_size, self.augment, self.seed = image_size, augment, seed
        self.validation_fraction, self.buffer = validation_fraction, buffer
        self.epoch, self.skip = 0, 0
        self.held_out: list[Record] = []
        self.records_seen = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.held_out, self.records_seen = [], 0
        rng = random.Random(self.seed * 1000003 + self.epoch * 7919 + self.shard[0])
        buffer: list[tuple[int, Record]] = []
        produced = 0

        def emit(entry: tuple[int, Record]):
            nonlocal produced
            produced += 1
            if produced <= self.skip:  # resumed mid-epoch: these were trained on before the restart
                return None
            i, record = entry
            return _item(self.family, record, image_size=self.image_size, augment=self.augment, seed=self.seed,
                         epoch=self.epoch, index=i)

        for i, record in read_pass(self.channel, self.shard):
            self.records_seen += 1
            if is_held_out(record.key, self.validation_fraction, self.seed):
                self.held_out.append(record)
                continue
            buffer.append((i, record))
            if len(buffer) >= self.buffer:
                item = emit(buffer.pop(rng.randrange(len(buffer))))
                if item is not None:
                    yield item
        rng.shuffle(buffer)
        for entry in buffer:
            item = emit(entry)
            if item is not None:
                yield item


def read_all(channel: PipeChannel, shard: tuple[int, int]) -> list[Record]:
    """A whole pass of a (validation/test) Pipe channel into memory."""
    return [record for _, record in read_pass(channel, shard)]
