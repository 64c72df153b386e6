"""Scale-out training on CPU with gloo, without Docker: torchrun processes, two "hosts" on loopback, Pipe FIFOs.

Two hosts are simulated by two torchrun launches on this machine whose host names are ``127.0.0.1`` and
``localhost`` (both resolve to loopback), exactly as container/distributed.py launches them in a job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from container import distributed
from model.normals.synthetic import write_dataset
from tests.integration.scaleout_support import TINY, FifoFeeder, free_port, tar_shard, write_spec
from train.config import parse_hyperparameters
from train.job import TrainJob, TrainPaths, training_runtime
from train.loop import run
from train.settings import TrainSettings, settings_from_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scaleout")
    write_dataset(root / "train", count=10, size=40, seed=1)
    write_dataset(root / "small", count=4, size=40, seed=2)
    return root


def _launch(layout: distributed.Layout, spec: Path, base: Path) -> subprocess.Popen:
    env = distributed.worker_environment(layout)
    env.update(SAGEMAKER_BASE_DIR=str(base), PYTHONPATH=str(REPO), BYOC_COLLECTIVE_TIMEOUT_S="60")
    return subprocess.Popen(distributed.torchrun_command(layout, spec), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _two_hosts(tmp_path: Path, channels: list[dict[str, Path]], hps: dict, sharded=()):
    hosts = ("127.0.0.1", "localhost")
    port = free_port()
    procs, roots = [], []
    for host, chans in zip(hosts, channels, strict=True):
        root = tmp_path / host
        root.mkdir()
        layout = distributed.plan({"hosts": list(hosts), "current_host": host}, pipe=False,
                                  settings=settings_from_env({"BYOC_MASTER_PORT": str(port),
                                                              "BYOC_PEER_TIMEOUT_S": "60"}))
        spec = write_spec(root / "job.json", root, chans, hps, list(hosts), host, sharded=sharded)
        procs.append(_launch(layout, spec, root / "ml"))
        roots.append(root)
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    return [p.returncode for p in procs], outputs, roots


def test_two_processes_on_one_host_train_together(scenes, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "ml"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    settings = settings_from_env({"BYOC_PROCESSES_PER_HOST": "2", "BYOC_MASTER_PORT": str(free_port())})
    layout = distributed.plan({"hosts": ["localhost"], "current_host": "localhost"}, pipe=False, settings=settings)
    spec = write_spec(tmp_path / "job.json", tmp_path, {"train": scenes / "train"}, TINY, ["localhost"], "localhost")
    code, stopped = distributed.run(layout, spec)
    out = capfd.readouterr().out
    assert (code, stopped) == (0, False), out[-4000:]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["drift_baseline.json", "model.json", "model.pt"]
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert report["world_size"] == 2
    # 9 training samples (1 held out) over 2 ranks -> 5 per rank -> 3 steps of 2 per epoch.
    assert report["steps"] == 6
    # Validation metrics are global (reduced over ranks) and printed once per epoch, by rank 0 only.
    assert out.count("#metric epoch=1 validation:mean_angular_error=") == 1
    assert out.count("#metric epoch=2 validation:mean_angular_error=") == 1
    # learning_rate is the peak rate for the global batch: no automatic scaling with the world size.
    ckpt = torch.load(sorted((tmp_path / "checkpoints").glob("*.pt"))[-1], weights_only=False)
    assert ckpt["world_size"] == 2 and ckpt["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(1e-3)


def test_two_hosts_with_unequal_shards_finish_together(scenes, tmp_path):
    # ShardedByS3Key: host 0 holds 10 scenes, host 1 only 4; both must run the same number of steps.
    codes, outputs, roots = _two_hosts(tmp_path, [{"train": scenes / "train"}, {"train": scenes / "small"}], TINY,
                                       sharded=("train",))
    assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    assert (roots[0] / "model" / "model.pt").exists()
    assert not (roots[1] / "model").exists() and not (roots[1] / "checkpoints").exists()
    report = json.loads((roots[0] / "data" / "metrics.json").read_text())
    # Host 0: 9 train samples after hold-out -> 9 per rank; host 1 pads its 3 to 9: 5 steps x 2 epochs.
    assert report["world_size"] == 2 and report["steps"] == 10
    assert outputs[0].count("#metric epoch=2 validation:loss=") == 1
    assert "#metric" not in outputs[1]


def test_a_failing_host_fails_the_other_instead_of_hanging(scenes, tmp_path):
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "normals").mkdir()
    (empty / "images" / ".keep").write_text("")
    started = time.monotonic()
    codes, outputs, roots = _two_hosts(tmp_path, [{"train": scenes / "train"}, {"train": empty}], TINY,
                                       sharded=("train",))
    assert codes[0] != 0 and codes[1] != 0, outputs
    assert time.monotonic() - started < 120
    reason = (roots[1] / "ml" / "output" / "failure").read_text()
    assert reason.startswith("UserError:") and "on host localhost (rank 1)" in reason


def _pipe_job(tmp_path: Path, hps: dict, channels: dict[str, Path], pipe: set[str],
              settings: TrainSettings | None = None) -> TrainJob:
    config, family, arch = parse_hyperparameters(hps)
    paths = TrainPaths(channels, tmp_path / "model", tmp_path / "data", tmp_path / "checkpoints",
                       pipe=frozenset(pipe))
    return TrainJob(config, family, arch, paths, training_runtime(config),
                    settings=settings or TrainSettings())


def test_pipe_mode_trains_two_epochs_from_fifos(scenes, tmp_path, capsys):
    data = tmp_path / "input" / "data"
    data.mkdir(parents=True)
    feeder = FifoFeeder(data / "train", tar_shard(scenes / "train"), passes=2)
    feeder.start()
    hps = {**TINY, "validation_fraction": "0.3"}
    summary = run(_pipe_job(tmp_path, hps, {"train": data / "train"}, {"train"}))
    feeder.join(timeout=30)
    assert feeder.error is None and feeder.written == 2
    assert summary["validation_source"].startswith("held out 0.3 of the stream")
    assert "validation:mean_angular_error" in summary["final_metrics"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["drift_baseline.json", "model.json", "model.pt"]
    out = capsys.readouterr().out
    assert out.count("#metric epoch=1 train:loss=") == 1 and out.count("#metric epoch=2 validation:loss=") == 1
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert len(report["history"]) == 2 and report["steps"] % 2 == 0 and report["steps"] > 0


def test_pipe_mode_with_a_piped_validation_channel(scenes, tmp_path):
    data = tmp_path / "input" / "data"
    data.mkdir(parents=True)
    feeders = [FifoFeeder(data / "train", tar_shard(scenes / "train"), passes=1),
               FifoFeeder(data / "validation", tar_shard(scenes / "small"), passes=1)]
    for f in feeders:
        f.start()
    hps = {**TINY, "epochs": "1"}
    summary = run(_pipe_job(tmp_path, hps, {"train": data / "train", "validation": data / "validation"},
                            {"train", "validation"}))
    assert summary["validation_source"] == "channel"
    assert summary["steps"] == 5  # all 10 train records, batch 2; none held out
    assert "validation:mean_angular_error" in summary["final_metrics"]


@pytest.mark.skipif(sys.platform != "linux", reason="FIFOs")
def test_missing_pipe_fails_clearly(tmp_path):
    from train.errors import UserError

    settings = settings_from_env({"BYOC_PIPE_TIMEOUT_S": "1"})
    with pytest.raises(UserError, match="train_0 did not appear within 1 s"):
        run(_pipe_job(tmp_path, TINY, {"train": tmp_path / "train"}, {"train"}, settings))
    assert not os.path.exists(tmp_path / "model")
