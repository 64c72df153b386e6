"""Checkpoints for managed spot and restarts: atomic writes, keep the newest few, resume the newest.

SageMaker syncs the checkpoint directory with CheckpointConfig.S3Uri both ways (restored before the
container starts; deletions propagate), so only files matching our own pattern are ever pruned.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from model.artifact import atomic_torch_save

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^checkpoint-step(\d{9})\.pt$")


class CheckpointManager:
    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep

    def _existing(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            m = _NAME.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return sorted(found)

    def save(self, state: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"checkpoint-step{state['step']:09d}.pt"
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, path)
        for _, old in self._existing()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable checkpoint; unreadable ones (e.g. a truncated upload) are skipped."""
        for _, path in reversed(self._existing()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                log.warning("skipping unreadable checkpoint %s: %s", path, exc)
                continue
            if state.get("format") != CHECKPOINT_FORMAT:
                log.warning("skipping checkpoint %s of unknown format %r", path, state.get("format"))
                continue
            return path, state
        return None
