"""A finished job leaves context with its numbers: the constant baseline and a training-curve picture."""

from __future__ import annotations

import json

import torch
from PIL import Image

from model.normals.family import SurfaceNormals
from tests.integration.test_training import TINY, make_job, scenes  # noqa: F401
from train.curve import draw_training_curve
from train.loop import Trainer, run


def test_metrics_json_has_the_constant_baseline_and_the_curve_is_drawn(tmp_path, scenes):  # noqa: F811
    run(make_job(tmp_path, {**TINY, "epochs": "3"}, {"train": scenes / "train"}))
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    baseline = report["constant_baseline"]
    assert 0 < baseline["mean_angular_error"] < 90 and 0 <= baseline["within_11.25deg"] <= 1
    assert all("elapsed_seconds" in h for h in report["history"])
    with Image.open(tmp_path / "data" / "training_curve.png") as curve:
        assert curve.size == (720, 240)  # train loss | validation error with the baseline


def test_curve_marks_the_baseline_in_grey_and_skips_missing_validation():
    history = [{"epoch": e, "train:loss": 1.0 / e, "validation:mean_angular_error": 40.0 / e} for e in (1, 2, 3)]
    with_baseline = draw_training_curve(history, "validation:mean_angular_error", 45.0)
    grey = (130, 130, 130)
    assert with_baseline.size == (720, 240) and grey in {c for _, c in with_baseline.getcolors(1 << 16)}
    train_only = draw_training_curve([{"epoch": 1, "train:loss": 0.5}], "validation:mean_angular_error", None)
    assert train_only.size == (360, 240)
    assert draw_training_curve([], "validation:mean_angular_error", None) is None


class RecordsModes(SurfaceNormals):
    def __init__(self):
        self.inference_modes = []

    def loss(self, outputs, batch):
        self.inference_modes.append(torch.is_inference_mode_enabled())
        return super().loss(outputs, batch)


def test_validation_runs_without_autograd(tmp_path, scenes):  # noqa: F811
    family = RecordsModes()
    trainer = Trainer(make_job(tmp_path, {**TINY, "epochs": "1"}, {"train": scenes / "train"}, family))
    trainer.evaluate(trainer.splits.validation, "validation")
    assert family.inference_modes and all(family.inference_modes)
