"""How long training runs and the learning rate along the way: warm-up, cosine, and the time budget.

With ``max_minutes`` the number of epochs is decided once, after the fourth epoch: as many whole epochs as
fit in the budget, at most ``epochs``, at the pace of the epochs since the second (the first warms the
learning rate up, picks kernels and grows the allocator). Until then the rate stays at its peak and the
cosine starts from the decision. The decision, its step and the time trained are stored in every
checkpoint, so a resumed job follows the same schedule step for step instead of re-deciding on another
machine's speed. Should the machine slow down after the decision, the job ends at the last epoch that fits
in the budget rather than overrun it (near the end of the cosine, where the rate is already low).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from train.config import TrainConfig

#: Pipe mode does not know the epoch length before the first pass ends: until then a short warm-up and
#: the peak rate; afterwards the usual schedule over (first pass's steps x epochs).
STREAM_WARMUP_STEPS = 20
#: Share of the budget planned with; the rest is reserve (later epochs vary a little).
BUDGET_MARGIN = 0.97
#: The epoch after whose end the budget's plan is made (earlier only when the budget ends sooner), from the
#: mean of the epochs since the second. Epochs on a shared 2-core machine vary by +-15% one to the next
#: (6.9-9.9 s in one default job), and a single epoch misjudged the job's mean by -14% to +8%.
PLAN_AFTER_EPOCHS = 4
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


def plan_now(config: TrainConfig, done: int, planned: int, warm: bool) -> bool:
    """Whether to fix the plan after epoch ``done``: at once when all ``epochs`` fit (the pace no longer matters),
    else after PLAN_AFTER_EPOCHS, or sooner when the budget ends before it. Without a warm epoch (``warm``
    False: only this process's first, which overstates the pace) it decides only when nothing more fits."""
    if planned >= config.epochs:
        return True
    if not warm:
        return planned <= done
    return done >= PLAN_AFTER_EPOCHS or planned < PLAN_AFTER_EPOCHS


def out_of_budget(config: TrainConfig, spent_seconds: float, epoch_seconds: float) -> bool:
    """Whether another epoch would end past ``max_minutes``."""
    return uses_budget(config) and spent_seconds + epoch_seconds > config.max_minutes * 60.0


@dataclass
class Pace:
    """How long this process's epochs take, and the run's time so far, for the budget's plan and its guard."""

    fit_start: float
    #: Seconds the run trained before this process resumed it (from the checkpoint).
    spent_before: float = 0.0
    epochs_started: int = 0
    #: Clock and step at the start of this process's second epoch (the first is cold), and of its latest.
    warm_from: tuple[float, int] | None = None
    epoch_from: tuple[float, int] = (0.0, 0)

    def start_epoch(self, now: float, step: int) -> None:
        self.epochs_started += 1
        self.epoch_from = (now, step)
        if self.epochs_started == 2:
            self.warm_from = self.epoch_from

    @property
    def warm(self) -> bool:
        return self.warm_from is not None

    def epoch_seconds(self, now: float, step: int, steps_per_epoch: int) -> float:
        """A whole epoch's seconds: the mean since the second epoch, else the first (or its rest) scaled up."""
        return _per_epoch(self.warm_from or self.epoch_from, now, step, steps_per_epoch)

    def last_epoch_seconds(self, now: float, step: int, steps_per_epoch: int) -> float:
        """The latest epoch's seconds (scaled up if this process ran only its rest)."""
        return _per_epoch(self.epoch_from, now, step, steps_per_epoch)

    def spent(self, now: float) -> float:
        """The run's training time so far, earlier processes included."""
        return self.spent_before + now - self.fit_start


def _per_epoch(since: tuple[float, int], now: float, step: int, steps_per_epoch: int) -> float:
    t0, s0 = since
    return (now - t0) / max((step - s0) / max(steps_per_epoch, 1), 1e-3)


def lr_factor(config: TrainConfig, total_steps: Callable[[], int], warmup: Callable[[], int],
              plan_step: Callable[[], int] = lambda: 0):
    """LambdaLR factor: linear warm-up, the peak until the end is decided, then cosine from there (or from the end
    of the warm-up, whichever is later) to 5% of the peak at that end."""

    def factor(step: int) -> float:
        warm = max(1, warmup())
        if step < warm:
            return (step + 1) / warm
        total = total_steps()
        if not total or config.lr_schedule == "constant":
            return 1.0
        start = max(warm, plan_step())
        progress = min(1.0, max(0, step - start) / max(1, total - start))
        return FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
