"""Pruning never loses the last good checkpoint; a save killed at any step of its write leaves a resumable
directory (the previous checkpoint, or the new one once it is renamed into place)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from train.checkpoint import CheckpointManager


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_truncated_newer_checkpoint_never_evicts_the_one_just_written(tmp_path):
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save({"step": 10})
    (tmp_path / "checkpoint-step000000050.pt").write_bytes(b"truncated upload")
    assert manager.latest()[1]["step"] == 10
    manager.save({"step": 12})
    assert names(tmp_path) == ["checkpoint-step000000012.pt"]
    assert manager.latest()[1]["step"] == 12


def test_unreadable_checkpoints_do_not_hold_slots(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (1, 2):
        manager.save({"step": step})
    for step in (3, 4):
        (tmp_path / f"checkpoint-step{step:09d}.pt").write_bytes(b"")
    manager.save({"step": 5})
    assert names(tmp_path) == ["checkpoint-step000000002.pt", "checkpoint-step000000005.pt"]


def test_a_checkpoint_of_an_unknown_format_is_not_resumable_and_is_removed(tmp_path):
    manager = CheckpointManager(tmp_path, keep=1)
    torch.save({"format": 99, "step": 7}, tmp_path / "checkpoint-step000000007.pt")
    assert manager.latest() is None
    manager.save({"step": 3})
    assert names(tmp_path) == ["checkpoint-step000000003.pt"]


def test_orphaned_temp_files_of_killed_saves_are_removed(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    orphan = tmp_path / ".checkpoint-step000000004.pt.k2j3h4"
    orphan.write_bytes(b"half a checkpoint")
    (tmp_path / ".other-tool.tmp").write_text("not ours")
    manager.save({"step": 5})
    assert names(tmp_path) == [".other-tool.tmp", "checkpoint-step000000005.pt"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_save_that_fails_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failing):
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save({"step": 1})

    def boom(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError):
        manager.save({"step": 2})
    monkeypatch.undo()
    assert names(tmp_path) == ["checkpoint-step000000001.pt"]
    assert CheckpointManager(tmp_path, keep=1).latest()[1]["step"] == 1


# A real kill cannot be caught: the child SIGKILLs itself at one point of the write, so no clean-up runs.
_KILL_AT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import torch
    import train.checkpoint as ck

    directory, stage = Path(sys.argv[1]), sys.argv[2]
    manager = ck.CheckpointManager(directory, keep=1)
    manager.save({"step": 1, "w": torch.ones(3)})
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if stage == "written":        # temp file complete, not yet fsynced
        os.fsync = die
    elif stage == "fsynced":      # fsynced, not yet renamed
        os.replace = die
    elif stage == "renamed":      # renamed into place, old checkpoints not yet pruned
        ck.CheckpointManager._prune = die
    manager.save({"step": 2, "w": torch.full((3,), 2.0)})
    sys.exit(3)  # not reached: the kill happens inside save
""")


@pytest.mark.parametrize("stage, resumed_step", [("written", 1), ("fsynced", 1), ("renamed", 2)])
def test_a_save_killed_at_each_step_of_the_write_resumes_and_recovers(tmp_path, stage, resumed_step):
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run([sys.executable, "-c", _KILL_AT, str(tmp_path), stage], cwd=root, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    if stage != "renamed":
        assert any(n.startswith(".checkpoint-step000000002.pt.") for n in names(tmp_path)), names(tmp_path)
    manager = CheckpointManager(tmp_path, keep=1)
    _, state = manager.latest()
    assert state["step"] == resumed_step and torch.equal(state["w"], torch.full((3,), float(resumed_step)))
    manager.save({"step": 3, "w": torch.full((3,), 3.0)})
    assert names(tmp_path) == ["checkpoint-step000000003.pt"]
