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


def test_planned_epochs_fill_what_is_left_of_the_budget_between_those_done_and_epochs():
    config = TrainConfig(epochs=40, max_minutes=10)
    assert planned_epochs(config, 2, 40.0, 20.0) == 29  # 2 + (600 s x 0.97 - 40 s) // 20 s
    assert planned_epochs(config, 2, 35.0, 15.0) == 38  # a slower first epoch counts once, at its real time
    assert planned_epochs(config, 2, 2.0, 1.0) == 40
    assert planned_epochs(config, 1, 10_000.0, 10_000.0) == 1
    assert planned_epochs(config, 2, 700.0, 1.0) == 2  # never fewer than already done
    assert planned_epochs(TrainConfig(epochs=7, max_minutes=0), 1, 1.0, 1.0) == 7
