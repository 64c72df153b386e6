from train.config import TrainConfig
from train.schedule import (
    FINAL_LR_FRACTION,
    PLAN_AFTER_EPOCHS,
    Pace,
    lr_factor,
    out_of_budget,
    plan_now,
    planned_epochs,
    warmup_steps,
)


def test_warm_up_fits_in_the_first_epoch_under_a_budget_and_is_three_percent_without():
    assert warmup_steps(TrainConfig(epochs=100, max_minutes=5), steps_per_epoch=16) == 16
    assert warmup_steps(TrainConfig(epochs=10, max_minutes=0), steps_per_epoch=100) == 30


def test_learning_rate_warms_up_then_follows_the_cosine_to_the_decided_end():
    config = TrainConfig(epochs=100, max_minutes=5)
    total = {"steps": 0}
    factor = lr_factor(config, lambda: total["steps"], lambda: 10)
    assert factor(0) == 0.1 and factor(9) == 1.0
    assert factor(10) == 1.0  # not decided yet: the peak rate
    total["steps"] = 110
    assert factor(10) == 1.0 and abs(factor(60) - (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) / 2)) < 1e-9
    assert abs(factor(110) - FINAL_LR_FRACTION) < 1e-9


def test_planned_epochs_fill_what_is_left_of_the_budget_between_those_done_and_epochs():
    config = TrainConfig(epochs=40, max_minutes=10)
    assert planned_epochs(config, 2, 40.0, 20.0) == 29  # 2 + (600 s x 0.97 - 40 s) // 20 s
    assert planned_epochs(config, 2, 35.0, 15.0) == 38  # a slower first epoch counts once, at its real time
    assert planned_epochs(config, 2, 2.0, 1.0) == 40
    assert planned_epochs(config, 1, 10_000.0, 10_000.0) == 1
    assert planned_epochs(config, 2, 700.0, 1.0) == 2  # never fewer than already done
    assert planned_epochs(TrainConfig(epochs=7, max_minutes=0), 1, 1.0, 1.0) == 7


def test_the_plan_waits_for_warm_epochs_unless_the_budget_ends_first_or_all_epochs_fit():
    config = TrainConfig(epochs=40, max_minutes=10)
    assert PLAN_AFTER_EPOCHS == 4
    assert not plan_now(config, 1, 30, warm=False) and not plan_now(config, 3, 30, warm=True)
    assert plan_now(config, 4, 30, warm=True)
    assert plan_now(config, 1, 40, warm=False)  # all epochs fit even at the cold pace: the plan is fixed
    assert not plan_now(config, 1, 2, warm=False)  # a cold first epoch overstates the pace: wait for a warm one
    assert plan_now(config, 1, 1, warm=False)  # unless not even a second epoch fits
    assert plan_now(config, 2, 3, warm=True) and not plan_now(config, 2, 4, warm=True)
    assert not plan_now(config, 5, 30, warm=False)  # resumed into the fourth epoch: one warm epoch first


def test_the_pace_is_the_mean_since_the_second_epoch_and_the_time_spans_restarts():
    pace = Pace(fit_start=0.0)
    pace.start_epoch(0.0, 0)
    assert not pace.warm and pace.epoch_seconds(30.0, 10, 10) == 30.0  # the cold first epoch, all there is
    pace.start_epoch(30.0, 10)
    pace.start_epoch(40.0, 20)
    assert pace.warm and pace.epoch_seconds(60.0, 30, 10) == 15.0 and pace.last_epoch_seconds(60.0, 30, 10) == 20.0
    assert pace.spent(60.0) == 60.0
    resumed = Pace(fit_start=100.0, spent_before=45.0)
    resumed.start_epoch(100.0, 25)  # the rest of an epoch of 10 steps: 5 steps in 8 s
    assert resumed.epoch_seconds(108.0, 30, 10) == 16.0 and resumed.spent(108.0) == 53.0
    config = TrainConfig(epochs=100, max_minutes=1)
    assert not out_of_budget(config, 40.0, 20.0) and out_of_budget(config, 41.0, 20.0)
    assert not out_of_budget(TrainConfig(max_minutes=0), 1e9, 1e9)


def test_the_cosine_starts_where_the_budget_was_decided():
    config = TrainConfig(epochs=100, max_minutes=5)
    factor = lr_factor(config, lambda: 110, lambda: 10, lambda: 40)
    assert factor(39) == 1.0 and factor(40) == 1.0  # the peak until the plan, no jump at it
    assert abs(factor(75) - (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) / 2)) < 1e-9
    assert abs(factor(110) - FINAL_LR_FRACTION) < 1e-9
