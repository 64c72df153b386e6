"""The time budget: decided once after the first epoch, stored, and followed exactly by resumed jobs."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from tests.integration.test_training import TINY, StopAfter, _weights, make_job, scenes  # noqa: F401
from train.errors import TrainingStopped
from train.loop import Trainer

BUDGET = {**TINY, "epochs": "6", "max_minutes": "1", "augment": "true", "ema_decay": "0.9"}


def fake_clock(seconds_per_call: float):
    """A clock that advances a fixed amount per reading, so the budget's decision is reproducible."""
    ticks = itertools.count()
    return lambda: next(ticks) * seconds_per_call


def fit(job, seconds_per_call: float):
    trainer = Trainer(job)
    trainer.clock = fake_clock(seconds_per_call)
    return trainer.fit()


def test_epochs_that_fit_in_the_budget_are_decided_after_the_first_one(tmp_path, scenes):  # noqa: F811
    # Three clock readings per first epoch (start, history, plan) 5 s apart: 10 s per epoch, 60 s budget
    # with a 3% margin: 5 epochs of the 6 allowed.
    summary = fit(make_job(tmp_path, BUDGET, {"train": scenes / "train"}), 5.0)
    assert summary["epochs"] == 5
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3, 4, 5]
    assert summary["steps"] == 5 * 2  # 8 training scenes, batch 4


def test_budget_never_cuts_below_one_epoch_nor_above_epochs(tmp_path, scenes):  # noqa: F811
    assert fit(make_job(tmp_path / "slow", BUDGET, {"train": scenes / "train"}), 1000.0)["epochs"] == 1
    assert fit(make_job(tmp_path / "fast", BUDGET, {"train": scenes / "train"}), 0.001)["epochs"] == 6


def test_resumed_budgeted_run_keeps_its_plan_and_matches_an_uninterrupted_one(tmp_path, scenes):  # noqa: F811
    channels = {"train": scenes / "train"}
    straight = fit(make_job(tmp_path / "a", BUDGET, channels, StopAfter()), 5.0)

    family = StopAfter()
    family.stop_after = 3  # inside the second epoch: after the decision
    job = make_job(tmp_path / "b", BUDGET, channels, family)
    family.event = job.stop
    with pytest.raises(TrainingStopped):
        fit(job, 5.0)
    # A much slower machine now: re-deciding would plan 1 epoch; the stored plan says 5.
    resumed = fit(make_job(tmp_path / "b", BUDGET, channels, StopAfter()), 1000.0)

    assert resumed["epochs"] == straight["epochs"] == 5 and resumed["steps"] == straight["steps"]
    a, b = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the saved model is the weight average
    assert resumed["final_metrics"] == straight["final_metrics"]


def test_a_slow_start_does_not_shrink_the_plan(tmp_path, scenes):  # noqa: F811
    # The first step takes 10 s (kernels picked, memory grown), every later one 1 s. Timing the whole first
    # epoch (17 s) would plan floor(58.2 / 17) = 3 epochs; at the pace after the first steps (8 s an epoch)
    # what is left of the budget holds 5 more: 6.
    hps = {**BUDGET, "epochs": "10", "batch_size": "1"}  # 8 training scenes: 8 steps an epoch
    trainer = Trainer(make_job(tmp_path, hps, {"train": scenes / "train"}))
    trainer.clock = lambda: trainer.progress.step + (9.0 if trainer.progress.step else 0.0)
    assert trainer.fit()["epochs"] == 6


def test_the_first_validation_is_counted_once_in_the_pace(tmp_path, scenes):  # noqa: F811
    # 4 steps an epoch: the first takes 10 s, the others 1 s, and each validation 5 s. A steady epoch is 4 + 5 =
    # 9 s; scaling the validation with the steps too would call it 24 s and plan 2 epochs instead of
    # 1 + floor((58.2 - 18) / 9) = 5.
    hps = {**BUDGET, "epochs": "10", "batch_size": "2"}
    trainer = Trainer(make_job(tmp_path, hps, {"train": scenes / "train"}))
    validated = [0.0]
    evaluate = trainer.evaluate

    def slow_evaluate(*args, **kwargs):
        validated[0] += 5.0
        return evaluate(*args, **kwargs)

    trainer.evaluate = slow_evaluate
    trainer.clock = lambda: trainer.progress.step + (9.0 if trainer.progress.step else 0.0) + validated[0]
    assert trainer.fit()["epochs"] == 5
