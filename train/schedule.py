"""How long training runs and the learning rate along the way: warm-up, cosine, and the time budget.

With ``max_minutes`` the number of epochs is decided once, after the first epoch (which warms the
learning rate up and is timed, validation included): as many whole epochs as fit in the budget, at
most ``epochs``. The decision is stored in every checkpoint, so a resumed job follows the same
schedule step for step instead of re-deciding on another machine's speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from train.config import TrainConfig

#: Pipe mode does not know the epoch length before the first pass ends: until then a short warm-up and
#: the peak rate; afterwards the usual schedule over (first pass's steps x epochs).
STREAM_WARMUP_STEPS = 20
#: Share of the measured first epoch's time kept in reserve (later epochs vary a little).
BUDGET_MARGIN = 0.97
FINAL_LR_FRACTION = 0.05


def uses_budget(config: TrainConfig) -> bool:
    return config.max_minutes > 0


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Linear warm-up length: 3% of the longest possible run; within the first epoch under a budget."""
    if not steps_per_epoch:
        return STREAM_WARMUP_STEPS
    warmup = max(1, int(0.03 * steps_per_epoch * config.epochs))
    return min(warmup, steps_per_epoch) if uses_budget(config) else warmup


def planned_epochs(config: TrainConfig, first_epoch_seconds: float, steady_epoch_seconds: float | None = None) -> int:
    """Whole epochs that fit in ``max_minutes``, between 1 and ``epochs``.

    The first epoch is over when this is decided and may have been slower than the rest (kernels chosen,
    memory mapped, the first validation): what remains of the budget is divided by ``steady_epoch_seconds``,
    the first epoch's pace after its first steps, when it was measured.
    """
    if not uses_budget(config):
        return config.epochs
    steady = max(min(steady_epoch_seconds or first_epoch_seconds, first_epoch_seconds), 1e-6)
    left = config.max_minutes * 60.0 * BUDGET_MARGIN - first_epoch_seconds
    return max(1, min(config.epochs, 1 + math.floor(left / steady)))


def lr_factor(config: TrainConfig, total_steps: Callable[[], int], warmup: Callable[[], int]):
    """LambdaLR factor: linear warm-up, then cosine to 5% of the peak at the (possibly later decided) end."""

    def factor(step: int) -> float:
        warm = max(1, warmup())
        if step < warm:
            return (step + 1) / warm
        total = total_steps()
        if not total or config.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
