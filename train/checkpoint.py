"""Checkpoints for managed spot and restarts: atomic writes, keep the newest few, resume the newest.

SageMaker syncs the checkpoint directory with CheckpointConfig.S3Uri both ways (restored before the
container starts; deletions propagate), so only files matching our own patterns are ever pruned.

Pruning counts only *resumable* checkpoints: a truncated upload or a file of another format must never
hold a slot, or a save could delete the only good checkpoint in favour of a broken one with a higher step.
Unreadable checkpoints and the temp files of saves killed mid-write are removed, since nothing can ever
resume from them.
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
