from train.config import TrainConfig
from train.schedule import FINAL_LR_FRACTION, lr_factor, planned_epochs, warmup_steps


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


def test_planned_epochs_fill_the_budget_between_one_and_epochs():
    config = TrainConfig(epochs=40, max_minutes=10)
    assert planned_epochs(config, 20.0) == 29  # 600 s x 0.97 / 20 s
    assert planned_epochs(config, 1.0) == 40
    assert planned_epochs(config, 10_000.0) == 1
    assert planned_epochs(TrainConfig(epochs=7, max_minutes=0), 1.0) == 7


def test_a_slow_first_epoch_does_not_shrink_the_plan_when_its_later_pace_is_known():
    config = TrainConfig(epochs=100, max_minutes=10)
    # 600 s x 0.97 = 582 s; the first epoch took 20 s but ran at 15 s per epoch once warm: 1 + (562 // 15).
    assert planned_epochs(config, 20.0, steady_epoch_seconds=15.0) == 38
    assert planned_epochs(config, 20.0) == planned_epochs(config, 20.0, steady_epoch_seconds=20.0) == 29
    assert planned_epochs(config, 700.0, steady_epoch_seconds=1.0) == 1
