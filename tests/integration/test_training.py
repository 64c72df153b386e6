"""Tiny in-process training runs through the same loop the container uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.artifact import load_model_dir
from model.normals.family import SurfaceNormals
from model.normals.synthetic import write_dataset
from tests.tinygrey.family import TinyGrey, write_tiny_dataset
from train.config import parse_hyperparameters
from train.errors import TrainingStopped, UserError
from train.job import TrainJob, TrainPaths, training_runtime
from train.loop import Trainer, run

TINY = {"epochs": "2", "batch_size": "4", "image_size": "32", "base_channels": "4", "depth": "2",
        "data_workers": "0", "panels": "2", "log_every_steps": "1", "checkpoint_steps": "0",
        "validation_fraction": "0.2"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    write_dataset(root / "train", count=10, size=40, seed=1)
    write_dataset(root / "test", count=3, size=40, seed=2)
    return root


def make_job(tmp: Path, hps: dict, channels: dict, family_override=None) -> TrainJob:
    config, family, arch = parse_hyperparameters(hps)
    family = family_override or family
    paths = TrainPaths(channels, tmp / "model", tmp / "data", tmp / "checkpoints")
    return TrainJob(config, family, arch, paths, training_runtime(config))


def test_tiny_run_writes_a_servable_model_and_outputs(tmp_path, scenes, capsys):
    summary = run(make_job(tmp_path, TINY, {"train": scenes / "train", "test": scenes / "test"}))
    assert summary["validation_source"] == "held out 2 of train"
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["drift_baseline.json", "model.json", "model.pt"]
    loaded = load_model_dir(tmp_path / "model")
    assert loaded.preprocessing["image_size"] == 32 and loaded.config.base_channels == 4
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert {"validation:mean_angular_error", "test:mean_angular_error"} <= set(report["final_metrics"])
    assert len(report["history"]) == 2
    assert sorted(p.name for p in (tmp_path / "data").glob("panel_*.png")) == ["panel_00.png", "panel_01.png"]
    out = capsys.readouterr().out
    assert "#metric epoch=2 validation:mean_angular_error=" in out
    assert "#metric epoch=2 test:mean_angular_error=" in out


def test_missing_train_channel_is_a_user_error(tmp_path, scenes):
    with pytest.raises(UserError, match="no 'train' channel"):
        run(make_job(tmp_path, TINY, {"validation": scenes / "train"}))


def test_empty_train_channel_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is empty"):
        run(make_job(tmp_path, TINY, {"train": tmp_path / "empty"}))


class StopAfter(SurfaceNormals):
    """Asks the loop to stop (as SIGTERM would) after a fixed number of training steps."""

    stop_after = 3

    def __init__(self):
        self.calls = 0
        self.event = None

    def loss(self, outputs, batch):
        if outputs.requires_grad:
            self.calls += 1
            if self.calls == self.stop_after and self.event is not None:
                self.event.set()
        return super().loss(outputs, batch)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pt", weights_only=True)


@pytest.mark.parametrize("crop_fraction", ["1", "0.5"])
def test_resumed_run_matches_an_uninterrupted_one_exactly(tmp_path, scenes, crop_fraction):
    hps = {**TINY, "epochs": "3", "augment": "true", "crop_fraction": crop_fraction}
    channels = {"train": scenes / "train"}
    straight = run(make_job(tmp_path / "a", hps, channels, StopAfter()))

    family = StopAfter()
    job = make_job(tmp_path / "b", hps, channels, family)
    family.event = job.stop
    with pytest.raises(TrainingStopped, match="checkpoint was saved"):
        Trainer(job).fit()
    assert list((tmp_path / "b" / "checkpoints").glob("checkpoint-step*.pt"))
    resumed = run(make_job(tmp_path / "b", hps, channels, StopAfter()))

    assert resumed["steps"] == straight["steps"]
    a, b = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final_metrics"] == straight["final_metrics"]


def test_checkpoint_of_another_architecture_is_refused(tmp_path, scenes):
    channels = {"train": scenes / "train"}
    run(make_job(tmp_path, {**TINY, "epochs": "1"}, channels))
    with pytest.raises(UserError, match="another model"):
        run(make_job(tmp_path, {**TINY, "epochs": "2", "base_channels": "8"}, channels))


def test_a_second_model_family_goes_through_the_same_train_and_load_path(tmp_path):
    write_tiny_dataset(tmp_path / "train")
    hps = {"model_family": "tests.tinygrey.family:TinyGrey", "hidden": "3", "epochs": "2",
           "batch_size": "2", "image_size": "16", "data_workers": "0", "panels": "1"}
    summary = run(make_job(tmp_path, hps, {"train": tmp_path / "train"}))
    assert "validation:mse" in summary["final_metrics"]
    loaded = load_model_dir(tmp_path / "model")
    assert isinstance(loaded.family, TinyGrey) and loaded.config.hidden == 3
    x = torch.rand(1, 3, 8, 8)
    assert loaded.network(x).shape == (1, 1, 8, 8)


class AutocastRecorder(SurfaceNormals):
    """Notes whether bf16 autocast was on each time the loss was computed (training and evaluation alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.autocast: list[bool] = []

    def loss(self, outputs, batch):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return super().loss(outputs, batch)


def test_bf16_training_reports_final_metrics_in_the_precision_a_cpu_endpoint_serves(tmp_path, scenes):
    if torch.cuda.is_available():
        pytest.skip("GPU runtimes keep the training precision")
    family = AutocastRecorder()
    run(make_job(tmp_path, {**TINY, "precision": "bf16"}, {"train": scenes / "train", "test": scenes / "test"},
                 family))
    # The steps and the per-epoch validations ran under bf16; the final validation and test passes did not.
    assert family.autocast[:-2] and all(family.autocast[:-2]) and family.autocast[-2:] == [False, False]


class InputRecorder(SurfaceNormals):
    """Notes the shape of every batch's input the loss sees (training steps and validation alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def loss(self, outputs, batch):
        self.shapes.add(tuple(batch["input"].shape[1:]))
        return super().loss(outputs, batch)


@pytest.mark.parametrize("crop_fraction,training", [("0.5", (5, 16, 16)), ("1", (3, 32, 32))])
def test_training_steps_see_windows_with_their_coordinates_and_validation_whole_frames(tmp_path, scenes,
                                                                                     crop_fraction, training):
    family = InputRecorder()
    run(make_job(tmp_path, {**TINY, "epochs": "1", "crop_fraction": crop_fraction}, {"train": scenes / "train"},
                 family))
    assert family.shapes == {training, (3, 32, 32)}
