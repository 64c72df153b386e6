"""Helpers for the scale-out tests: tar record shards, FIFO writers, free ports, worker specs."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
from pathlib import Path

TINY = {"epochs": "2", "batch_size": "2", "image_size": "32", "base_channels": "4", "depth": "2",
        "data_workers": "0", "panels": "1", "log_every_steps": "1", "checkpoint_steps": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tar_shard(channel_dir: Path) -> bytes:
    """A File-mode channel (images/, normals/, masks/) as a Pipe-mode tar stream of records."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for image in sorted((channel_dir / "images").iterdir()):
            stem = image.stem
            members = [(f"{stem}{image.suffix}", image),
                       (f"{stem}.normals.png", channel_dir / "normals" / f"{stem}.png")]
            mask = channel_dir / "masks" / f"{stem}.png"
            if mask.exists():
                members.append((f"{stem}.mask.png", mask))
            for name, path in members:
                data = path.read_bytes()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FifoFeeder(threading.Thread):
    """Plays SageMaker's part in Pipe mode: creates ``<base>_<n>`` FIFOs one after another and writes a pass."""

    def __init__(self, base: Path, payload: bytes, passes: int) -> None:
        super().__init__(daemon=True)
        self.base, self.payload, self.passes = base, payload, passes
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for n in range(self.passes):
                path = self.base.with_name(f"{self.base.name}_{n}")
                os.mkfifo(path)
                with open(path, "wb") as fifo:  # blocks until the trainer opens it
                    try:
                        fifo.write(self.payload)
                    except BrokenPipeError:  # the reader may stop early; SageMaker allows that
                        pass
                self.written += 1
        except BaseException as exc:
            self.error = exc


def write_spec(path: Path, root: Path, channels: dict[str, Path], hps: dict, hosts: list[str], host: str,
               sharded=(), pipe=()) -> Path:
    """The job spec PID 1 writes for the scale-out processes of one host."""
    from train.job import JobSpec, TrainPaths

    paths = TrainPaths(channels, root / "model", root / "data", root / "checkpoints", frozenset(sharded),
                       frozenset(pipe))
    return JobSpec(hps, paths, tuple(hosts), host).write(path)
