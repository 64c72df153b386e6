"""How long training runs and the learning rate along the way: warm-up, cosine, and the time budget.

With ``max_minutes`` the number of epochs is decided once, after the second epoch (the first warms the
learning rate up, picks kernels and grows the allocator; the second, validation included, is the pace):
as many whole epochs as fit in the budget, at most ``epochs``. Until then the rate stays at its peak. The
decision is stored in every checkpoint, so a resumed job follows the same schedule step for step instead
of re-deciding on another machine's speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from train.config import TrainConfig

#: Pipe mode does not know the epoch length before the first pass ends: until then a short warm-up and
#: the peak rate; afterwards the usual schedule over (first pass's steps x epochs).
STREAM_WARMUP_STEPS = 20
#: Share of the budget planned with; the rest is reserve (later epochs vary a little).
BUDGET_MARGIN = 0.97
#: The epoch after which the budget's plan is made (earlier only when no more than this many fit). In four
#: budgeted jobs on a 2-core AVX2 machine the second epoch's whole duration was 1-8% above the job's mean
#: epoch, where the first epoch's later steps had misjudged it by -7% to +11%.
PLAN_AFTER_EPOCHS = 2
FINAL_LR_FRACTION = 0.05


def uses_budget(config: TrainConfig) -> bool:
    return config.max_minutes > 0


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Linear warm-up length: 3% of the longest possible run; within the first epoch under a budget."""
    if not steps_per_epoch:
        return STREAM_WARMUP_STEPS
    warmup = max(1, int(0.03 * steps_per_epoch * config.epochs))
    return min(warmup, steps_per_epoch) if uses_budget(config) else warmup


def planned_epochs(config: TrainConfig, done: int, spent_seconds: float, epoch_seconds: float) -> int:
    """Epochs in all that fit in ``max_minutes``: the ``done`` ones, which took ``spent_seconds``, and as many
    more of ``epoch_seconds`` as fit in what is left (at most ``epochs`` in all)."""
    if not uses_budget(config):
        return config.epochs
    left = config.max_minutes * 60.0 * BUDGET_MARGIN - spent_seconds
    return max(done, min(config.epochs, done + math.floor(left / max(epoch_seconds, 1e-6))))


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
