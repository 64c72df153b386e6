"""One way to assemble a training job, for every entry point.

A :class:`JobSpec` is what any training process needs: the hyperparameters as given and where the data and
outputs are. The container reads it from the /opt/ml tree (container/jobtree.py), ``python -m train`` from
its arguments, and a scale-out process from the JSON file PID 1 wrote (:meth:`JobSpec.write`). Each then
calls :func:`build_job` and :func:`train.loop.run`, and maps what happened with :mod:`train.outcome`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.cpus import available_cpus
from model.family import ModelFamily
from model.runtime import Runtime, cuda_fallback_note, select_runtime
from train.config import TrainConfig, parse_hyperparameters
from train.distributed import Dist
from train.settings import TrainSettings
from train.synthetic import with_synthetic_channels

log = logging.getLogger(__name__)

#: What ``parse_hyperparameters`` returns: the training config, the model family and its architecture config.
Parsed = tuple[TrainConfig, ModelFamily, Any]


@dataclass(frozen=True)
class TrainPaths:
    channels: dict[str, Path]
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    #: Channels with S3DistributionType ShardedByS3Key: each host holds only its own part.
    sharded: frozenset[str] = frozenset()
    #: Channels in Pipe input mode: ``channels[name]_<n>`` are FIFOs, one per pass (train/stream.py).
    pipe: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": {name: str(path) for name, path in self.channels.items()},
            "model_dir": str(self.model_dir),
            "output_data_dir": str(self.output_data_dir),
            "checkpoint_dir": str(self.checkpoint_dir),
            "sharded": sorted(self.sharded),
            "pipe": sorted(self.pipe),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainPaths:
        return cls(
            channels={name: Path(path) for name, path in data["channels"].items()},
            model_dir=Path(data["model_dir"]),
            output_data_dir=Path(data["output_data_dir"]),
            checkpoint_dir=Path(data["checkpoint_dir"]),
            sharded=frozenset(data.get("sharded", ())),
            pipe=frozenset(data.get("pipe", ())),
        )


@dataclass(frozen=True)
class JobSpec:
    hyperparameters: Mapping[str, Any]
    paths: TrainPaths
    #: The job's hosts as resourceconfig.json lists them, and this one (scale-out; one host otherwise).
    hosts: tuple[str, ...] = ()
    current_host: str = ""

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps({"hyperparameters": dict(self.hyperparameters), **self.paths.to_dict(),
                                    "hosts": list(self.hosts), "current_host": self.current_host}))
        return path

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        data = json.loads(path.read_text())
        return cls(data["hyperparameters"], TrainPaths.from_dict(data), tuple(data.get("hosts", ())),
                   data.get("current_host", ""))

    def parse(self) -> Parsed:
        """The hyperparameters parsed and checked (a bad one is a UserError naming it): once per process,
        the result handed to ``with_demo_data`` and ``build_job``."""
        return parse_hyperparameters(self.hyperparameters)

    def with_demo_data(self, scratch: Path, config: TrainConfig) -> JobSpec:
        """The spec with a generated ``train`` channel when ``config.synthetic_samples`` asks for one (once per
        job, before scale-out processes start: they all train on the same generated files)."""
        channels = with_synthetic_channels(self.paths.channels, config, scratch)
        return dataclasses.replace(self, paths=dataclasses.replace(self.paths, channels=channels))


@dataclass(frozen=True)
class TrainJob:
    config: TrainConfig
    family: ModelFamily
    arch: Any
    paths: TrainPaths
    runtime: Runtime
    dist: Dist = field(default_factory=Dist)
    settings: TrainSettings = field(default_factory=TrainSettings)
    #: Set from a SIGTERM handler; the loop checkpoints and raises TrainingStopped at the next step.
    stop: threading.Event = field(default_factory=threading.Event)


def training_runtime(config: TrainConfig, dist: Dist | None = None) -> Runtime:
    """Device, precision and threads for training this process's share of the job (the one place they are
    chosen for training; benchmarks and tests call it too, so they measure what a job runs)."""
    dist = dist or Dist()
    device, cpu_threads = None, None
    if not dist.enabled:
        if note := cuda_fallback_note():
            log.warning("%s", note)
    else:
        import torch

        if torch.cuda.is_available():  # one GPU per process
            device = f"cuda:{dist.local_rank}"
        else:  # the host's cores shared by its processes
            cpu_threads = max(1, available_cpus() // dist.local_world_size)
    return select_runtime(config.precision, device=device, channels_last=config.channels_last, cpu_threads=cpu_threads,
                          training=True)


def build_job(spec: JobSpec, settings: TrainSettings | None = None,
              join: Callable[[TrainSettings], Dist] | None = None, parsed: Parsed | None = None) -> TrainJob:
    """The job of this process: hyperparameters parsed (``parsed``: by this process already, ``spec.parse()``),
    then the process group joined (``join``; scale-out only, after parsing so a bad value fails before any
    process waits for its peers), then the device."""
    settings = settings or TrainSettings()
    config, family, arch = parsed or spec.parse()
    dist = join(settings) if join else Dist()
    return TrainJob(config, family, arch, spec.paths, training_runtime(config, dist), dist, settings)


def stop_on(job: TrainJob, *signals: signal.Signals) -> None:
    """Make these signals (default SIGTERM) ask the loop to checkpoint and stop at its next step."""

    def handler(signum: int, _frame: Any) -> None:
        log.warning("%s: checkpointing and stopping", signal.Signals(signum).name)
        job.stop.set()

    for signum in signals or (signal.SIGTERM,):
        signal.signal(signum, handler)
