"""SIGTERM at many points of a run (training steps, periodic checkpoints, epoch ends, validation): each stop
leaves a complete checkpoint, and each resumed run ends with weights bit-identical to an uninterrupted one
(CPU, single process). The signal is real: the same handler as container/training.py sets the stop flag."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import torch

from model.normals.family import SurfaceNormals
from model.normals.synthetic import write_dataset
from tests.integration.test_training import TINY, make_job
from train.checkpoint import CheckpointManager
from train.errors import TrainingStopped
from train.loop import Trainer

HPS = {**TINY, "epochs": "3", "batch_size": "2", "augment": "true", "checkpoint_steps": "3", "keep_checkpoints": "1",
       "panels": "0"}
POINTS = 10


class SigtermAt(SurfaceNormals):
    """Sends this process SIGTERM during its ``at``-th loss computation (training or validation)."""

    def __init__(self, at: int | None = None) -> None:
        self.at, self.calls = at, 0

    def loss(self, outputs, batch):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(outputs, batch)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    write_dataset(root / "train", count=10, size=40, seed=1)
    return root


@pytest.fixture
def sigterm_sets_stop():
    """Install the container's SIGTERM handler for the job being run; restore the previous one after."""
    jobs = []
    previous = signal.signal(signal.SIGTERM, lambda *_: jobs[-1].stop.set())
    yield jobs
    signal.signal(signal.SIGTERM, previous)


def _fit(root: Path, channels: dict, family: SurfaceNormals, jobs: list) -> dict | None:
    job = make_job(root, HPS, channels, family)
    jobs.append(job)
    try:
        return Trainer(job).fit()
    except TrainingStopped:
        return None


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "model" / "model.pt", weights_only=True)


def _assert_complete_checkpoint(root: Path) -> int:
    directory = root / "checkpoints"
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")], "a temp file was left"
    found = CheckpointManager(directory, keep=1).latest()
    assert found is not None, "no readable checkpoint after SIGTERM"
    return int(found[1]["step"])


def test_sigterm_at_random_points_always_resumes_to_identical_weights(tmp_path, scenes, sigterm_sets_stop):
    channels = {"train": scenes / "train"}
    reference = SigtermAt()
    straight = _fit(tmp_path / "straight", channels, reference, sigterm_sets_stop)
    expected = _weights(tmp_path / "straight")
    points = sorted(random.Random(9).sample(range(1, reference.calls + 1), POINTS))
    stopped = 0
    for at in points:
        root = tmp_path / f"stop_at_{at}"
        finished = _fit(root, channels, SigtermAt(at), sigterm_sets_stop)
        if finished is None:
            stopped += 1
            _assert_complete_checkpoint(root)
            finished = _fit(root, channels, SigtermAt(), sigterm_sets_stop)
        # else: SIGTERM during the final evaluation; the run just finishes (well inside the grace)
        assert finished is not None and finished["steps"] == straight["steps"]
        got = _weights(root)
        assert all(torch.equal(expected[k], got[k]) for k in expected), f"SIGTERM at loss call {at}"
        assert finished["final_metrics"] == straight["final_metrics"]
    assert stopped >= POINTS - 2  # only calls in the last epoch's end can let the run finish instead


def test_repeated_interruptions_of_one_job_still_reach_identical_weights(tmp_path, scenes, sigterm_sets_stop):
    channels = {"train": scenes / "train"}
    _fit(tmp_path / "straight", channels, SigtermAt(), sigterm_sets_stop)
    root = tmp_path / "spot"
    for at in (2, 3, 5):  # each restart is stopped again a few steps after it resumed
        assert _fit(root, channels, SigtermAt(at), sigterm_sets_stop) is None
        _assert_complete_checkpoint(root)
    assert _fit(root, channels, SigtermAt(), sigterm_sets_stop) is not None
    expected, got = _weights(tmp_path / "straight"), _weights(root)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
