"""The time budget: decided once after the fourth epoch, stored, followed exactly by resumed jobs, and kept."""

from __future__ import annotations

import json

import pytest
import torch

from tests.integration.test_training import TINY, StopAfter, _weights, make_job, scenes  # noqa: F401
from train.errors import TrainingStopped
from train.loop import Trainer

# 8 training scenes, batch 4: 2 steps an epoch. A 60 s budget, planned with 58.2 s (the 3% margin).
BUDGET = {**TINY, "epochs": "6", "max_minutes": "1", "augment": "true", "ema_decay": "0.9"}


def fit(job, seconds_per_step: float):
    """Train with a clock that reads the optimizer steps taken, so the budget's decision is reproducible."""
    trainer = Trainer(job)
    trainer.clock = lambda: trainer.progress.step * seconds_per_step
    return trainer.fit()


def test_epochs_that_fit_in_the_budget_are_decided_after_the_fourth_one(tmp_path, scenes, caplog):  # noqa: F811
    # 10 s an epoch: after four (40 s), 18.2 s hold 1 more: 5 of the 6 allowed.
    with caplog.at_level("INFO", logger="train.loop"):
        summary = fit(make_job(tmp_path, BUDGET, {"train": scenes / "train"}), 5.0)
    assert summary["epochs"] == 5
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3, 4, 5]
    assert summary["steps"] == 5 * 2
    assert "4 epoch(s) took 40.0 s, planned at 10.0 s an epoch; training 5 epochs (10 steps)" in caplog.text


def test_budget_never_cuts_below_one_epoch_nor_above_epochs(tmp_path, scenes):  # noqa: F811
    # So slow that not even a second epoch fits: decided after the first, 1 epoch.
    assert fit(make_job(tmp_path / "slow", BUDGET, {"train": scenes / "train"}), 1000.0)["epochs"] == 1
    assert fit(make_job(tmp_path / "fast", BUDGET, {"train": scenes / "train"}), 0.001)["epochs"] == 6


def _stopped_at(tmp_path, scenes, step: int) -> None:  # noqa: F811
    family = StopAfter()
    family.stop_after = step
    job = make_job(tmp_path, BUDGET, {"train": scenes / "train"}, family)
    family.event = job.stop
    with pytest.raises(TrainingStopped):
        fit(job, 5.0)


def _same_training(a, b, straight, resumed) -> None:
    assert resumed["epochs"] == straight["epochs"] == 5 and resumed["steps"] == straight["steps"]
    wa, wb = _weights(a / "model"), _weights(b / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the saved model is the weight average
    assert resumed["final_metrics"] == straight["final_metrics"]


def test_resumed_budgeted_run_keeps_its_plan_and_matches_an_uninterrupted_one(tmp_path, scenes):  # noqa: F811
    channels = {"train": scenes / "train"}
    straight = fit(make_job(tmp_path / "a", BUDGET, channels, StopAfter()), 5.0)
    _stopped_at(tmp_path / "b", scenes, 9)  # inside the fifth epoch: after the decision
    # A much slower machine now: re-deciding would stop after this epoch; the stored plan says 5, the last.
    resumed = fit(make_job(tmp_path / "b", BUDGET, channels, StopAfter()), 1000.0)
    _same_training(tmp_path / "a", tmp_path / "b", straight, resumed)


def test_a_job_stopped_before_the_decision_makes_it_after_resuming_from_its_own_pace(tmp_path, scenes):  # noqa: F811
    # Stopped inside the second epoch, resumed at the same pace: after the fourth epoch, as the first job, it
    # counts the four at its own pace (10 s each) and plans the same 5 epochs, step for step.
    channels = {"train": scenes / "train"}
    straight = fit(make_job(tmp_path / "a", BUDGET, channels, StopAfter()), 5.0)
    _stopped_at(tmp_path / "b", scenes, 3)
    resumed = fit(make_job(tmp_path / "b", BUDGET, channels, StopAfter()), 5.0)
    _same_training(tmp_path / "a", tmp_path / "b", straight, resumed)


def test_a_slow_start_does_not_shrink_the_plan(tmp_path, scenes):  # noqa: F811
    # The first step takes 10 s (kernels picked, memory grown), every later one 1 s. The first epoch's 17 s
    # as the pace would plan 1 + floor(41.2 / 17) = 3 epochs; the later epochs' 8 s leave room for
    # 4 + floor((58.2 - 41) / 8) = 6.
    hps = {**BUDGET, "epochs": "10", "batch_size": "1"}  # 8 training scenes: 8 steps an epoch
    trainer = Trainer(make_job(tmp_path, hps, {"train": scenes / "train"}))
    trainer.clock = lambda: trainer.progress.step + (9.0 if trainer.progress.step else 0.0)
    assert trainer.fit()["epochs"] == 6


def test_the_validation_is_part_of_the_pace(tmp_path, scenes):  # noqa: F811
    # 4 steps an epoch: the first takes 10 s, the others 1 s, and each validation 5 s. A warm epoch, 4 + 5
    # = 9 s, is the pace: 4 + floor((58.2 - 45) / 9) = 5 epochs.
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


def test_a_machine_that_slows_down_after_the_plan_ends_the_job_within_its_budget(tmp_path, scenes, caplog):  # noqa: F811
    # 5 s an epoch: after four (20 s) the plan is all 10 epochs. From the sixth on 20 s an epoch: the sixth ends
    # at 45 s and a seventh would end at 65 s, past the 60 s budget (the mean since the second, 8 s, would not
    # see it coming).
    hps = {**BUDGET, "epochs": "10"}
    trainer = Trainer(make_job(tmp_path, hps, {"train": scenes / "train"}))
    trainer.clock = lambda: 2.5 * min(trainer.progress.step, 10) + 10.0 * max(trainer.progress.step - 10, 0)
    with caplog.at_level("WARNING", logger="train.loop"):
        summary = trainer.fit()
    assert summary["planned_epochs"] == 10 and summary["epochs"] == 6 and summary["steps"] == 12
    assert "ending after epoch 6 of 10" in caplog.text
    report = json.loads((tmp_path / "data" / "metrics.json").read_text())
    assert report["epochs"] == 6 and [h["epoch"] for h in report["history"]] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "model" / "model.pt").is_file()
    # Started again on the same checkpoints (a rerun, or a restart during the final evaluation): it trains no more.
    again = fit(make_job(tmp_path, hps, {"train": scenes / "train"}), 2.5)
    assert again["epochs"] == 6 and again["steps"] == 12


def test_a_resumed_job_does_not_take_its_cold_first_epoch_for_a_slowdown(tmp_path, scenes):  # noqa: F811
    # Planned 10 epochs at 5 s each, stopped inside the sixth (27.5 s trained). The resumed process spends 4 s
    # more on its first step: scaled up from the one step of that epoch it runs, that would read as 13 s an
    # epoch and end the job; the run's real time, 54 s at the end, fits in the budget.
    hps = {**BUDGET, "epochs": "10"}
    family = StopAfter()
    family.stop_after = 11
    job = make_job(tmp_path, hps, {"train": scenes / "train"}, family)
    family.event = job.stop
    with pytest.raises(TrainingStopped):
        fit(job, 2.5)
    trainer = Trainer(make_job(tmp_path, hps, {"train": scenes / "train"}, StopAfter()))
    trainer.clock = lambda: 2.5 * trainer.progress.step + (4.0 if trainer.progress.step > 11 else 0.0)
    summary = trainer.fit()
    assert summary["epochs"] == summary["planned_epochs"] == 10 and summary["steps"] == 20
