"""Checkpoints for managed spot and restarts: atomic writes, keep the newest few, resume the newest.

:class:`TrainingCheckpoints` decides what a checkpoint holds (a run's :class:`Progress` and its
:class:`Trainables`) and how a run resumes from one; :class:`CheckpointManager` owns the files.

SageMaker syncs the checkpoint directory with CheckpointConfig.S3Uri both ways (restored before the
container starts; deletions propagate), so only files matching our own patterns are ever pruned.

Pruning counts only *resumable* checkpoints: a truncated upload or a file of another format must never
hold a slot, or a save could delete the only good checkpoint in favour of a broken one with a higher step.
Unreadable checkpoints and the temp files of saves killed mid-write are removed, since nothing can ever
resume from them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.artifact import atomic_torch_save
from train.distributed import Dist
from train.ema import WeightAverage
from train.errors import UserError

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^checkpoint-step(\d{9,})\.pt$")  # zero-padded to 9 digits, longer past 10**9 steps
#: model.artifact's temp files: "." + final name + "." + a random suffix (tempfile.mkstemp).
_TEMP = re.compile(r"^\.checkpoint-step\d{9,}\.pt\..+$")


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class CheckpointManager:
    """The single writer (global rank 0) of the checkpoint directory."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep
        # path -> (fingerprint, resumable): each file is loaded at most once per process to judge it.
        self._verdicts: dict[Path, tuple[tuple[int, int], bool]] = {}

    def _existing(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = _NAME.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def _load(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint's state, or None (logged) when it cannot be resumed from."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            log.warning("unreadable checkpoint %s: %s", path, exc)
            return None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            log.warning("checkpoint %s has unknown format %r", path, found)
            return None
        return state

    def _remember(self, path: Path, resumable: bool) -> None:
        try:
            self._verdicts[path] = (_fingerprint(path), resumable)
        except OSError:
            self._verdicts.pop(path, None)

    def _resumable(self, path: Path) -> bool:
        try:
            fingerprint = _fingerprint(path)
        except OSError:
            return False
        known = self._verdicts.get(path)
        if known is not None and known[0] == fingerprint:
            return known[1]
        resumable = self._load(path) is not None
        self._verdicts[path] = (fingerprint, resumable)
        return resumable

    def save(self, state: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"checkpoint-step{state['step']:09d}.pt"
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, path)
        self._remember(path, True)  # written, fsynced and renamed by us: no need to read it back
        self._prune()
        return path

    def _prune(self) -> None:
        """Keep the newest ``keep`` resumable checkpoints; delete the rest of ours and orphaned temp files."""
        for path in self.directory.iterdir():
            if _TEMP.match(path.name):  # a save runs only inside save(): any temp file left is orphaned
                log.warning("removing %s, left by a save that was killed mid-write", path)
                path.unlink(missing_ok=True)
        kept = 0
        for _, path in reversed(self._existing()):
            if kept < self.keep and self._resumable(path):
                kept += 1
                continue
            if kept < self.keep:
                log.warning("removing unresumable checkpoint %s", path)
            path.unlink(missing_ok=True)
            self._verdicts.pop(path, None)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest resumable checkpoint; unreadable ones (e.g. a truncated upload) are skipped."""
        for _, path in reversed(self._existing()):
            state = self._load(path)
            self._remember(path, state is not None)
            if state is not None:
                return path, state
            log.warning("skipping checkpoint %s", path)
        return None


@dataclass
class Progress:
    """Where a run is: everything besides the weights that a checkpoint must bring back."""

    step: int = 0
    epoch: int = 0
    samples_in_epoch: int = 0  # per rank, of the current epoch, already trained on
    #: 0 until known (a Pipe stream learns it in its first epoch).
    steps_per_epoch: int = 0
    #: 0 until decided (under a time budget, after the fourth epoch: train/schedule.py).
    planned_epochs: int = 0
    #: The step at which the budget's plan was made: the cosine starts there (0: known from the start).
    plan_step: int = 0
    #: Set when the time budget's guard ended the run before its plan: a resumed job trains no further.
    stopped_at_epoch: int = 0
    #: Seconds of training (validation included) across every process of this run so far.
    budget_seconds: float = 0.0
    epoch_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(2, dtype=torch.float64))  # (sum, count)
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.planned_epochs

    @property
    def last_epoch(self) -> int:
        """The epoch count the run ends at: the plan, or where the time budget's guard stopped it."""
        return self.stopped_at_epoch or self.planned_epochs

    def next_epoch(self) -> None:
        self.epoch += 1
        self.samples_in_epoch = 0
        self.epoch_loss.zero_()


@dataclass(frozen=True)
class Trainables:
    """The stateful training objects a checkpoint saves and restores."""

    model: nn.Module  # the bare network, not a DDP or compiled wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: WeightAverage | None


class TrainingCheckpoints:
    """Saves and resumes a run: progress and trainables, for one model identity and process layout."""

    def __init__(self, manager: CheckpointManager, identity: dict[str, Any], dist: Dist, batch_size: int) -> None:
        self.manager, self.identity, self.dist, self.batch_size = manager, identity, dist, batch_size

    def save(self, parts: Trainables, progress: Progress) -> None:
        if self.dist.is_main:
            path = self.manager.save({
                **self.identity,
                "step": progress.step,
                "epoch": progress.epoch,
                "samples_in_epoch": progress.samples_in_epoch,
                "steps_per_epoch": progress.steps_per_epoch,
                "world_size": self.dist.world_size,
                "batch_size": self.batch_size,
                "epoch_loss": progress.epoch_loss.clone(),
                "history": json.dumps(progress.history),
                "planned_epochs": progress.planned_epochs,
                "plan_step": progress.plan_step,
                "stopped_at_epoch": progress.stopped_at_epoch,
                "budget_seconds": progress.budget_seconds,
                "ema": parts.ema.state_dict() if parts.ema else None,
                "model": parts.model.state_dict(),
                "optimizer": parts.optimizer.state_dict(),
                "scheduler": parts.scheduler.state_dict(),
                "scaler": parts.scaler.state_dict(),
            })
            log.info("checkpoint saved: %s (step %d)", path, progress.step)
        self.dist.barrier()

    def resume(self, parts: Trainables, progress: Progress, learned_epoch_length: bool) -> bool:
        """Restore the newest checkpoint into ``parts`` and ``progress``; False when there is none.

        ``learned_epoch_length``: the epoch length was learned by reading data (Pipe) and is restored, not
        recomputed from the files.
        """
        found = self.manager.latest()
        if found is None:
            return False
        path, state = found
        if {"family": state.get("family"), "arch": state.get("arch")} != self.identity:
            raise UserError(
                f"checkpoint {path} was written for another model ({state.get('family')}, {state.get('arch')}) "
                f"than this job's ({self.identity['family']}, {self.identity['arch']})",
                "use the same model hyperparameters as the interrupted job, or an empty checkpoint location",
            )
        parts.model.load_state_dict(state["model"])
        parts.optimizer.load_state_dict(state["optimizer"])
        parts.scheduler.load_state_dict(state["scheduler"])
        parts.scaler.load_state_dict(state["scaler"])
        if parts.ema is not None and state.get("ema"):
            parts.ema.load_state_dict(state["ema"])
        progress.step, progress.epoch = int(state["step"]), int(state["epoch"])
        # The budget's decision is kept, never re-made: the schedule stays the one already followed.
        progress.planned_epochs = int(state.get("planned_epochs") or progress.planned_epochs)
        progress.plan_step = int(state.get("plan_step", 0))
        progress.stopped_at_epoch = int(state.get("stopped_at_epoch", 0))
        progress.budget_seconds = float(state.get("budget_seconds", 0.0))
        if learned_epoch_length and state.get("steps_per_epoch"):
            progress.steps_per_epoch = int(state["steps_per_epoch"])
        progress.history = json.loads(state["history"])
        if (state["world_size"], state["batch_size"]) == (self.dist.world_size, self.batch_size):
            progress.samples_in_epoch = int(state["samples_in_epoch"])
            progress.epoch_loss = state["epoch_loss"].double()
        else:
            # Another world size or batch size shards the epoch differently: redo the interrupted epoch.
            log.warning("resuming with a different world/batch size: epoch %d restarts from its start",
                        progress.epoch)
            progress.samples_in_epoch = 0
            progress.epoch_loss.zero_()
        log.info("resumed from %s: epoch %d, step %d", path, progress.epoch, progress.step)
        return True
