"""An exponential moving average of the weights, used for validation and for the saved model.

Averaging the last few hundred steps' weights smooths the noise of small-batch updates; on CPU budgets
of a few hundred steps it is the cheapest accuracy there is (one fused lerp per step).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _decay(self) -> float:
        # Early on the average would be dominated by the random start: ramp the horizon up with the steps.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self._decay()
        mine, theirs = [], []
        # Floating buffers (BatchNorm statistics) are averaged like the weights they describe, as in
        # common EMA implementations; integer ones (batch counters) are copied.
        pairs = [*zip(self.model.parameters(), model.parameters(), strict=True),
                 *zip(self.model.buffers(), model.buffers(), strict=True)]
        for a, b in pairs:
            if a.is_floating_point():
                mine.append(a)
                theirs.append(b.detach())
            else:
                a.copy_(b)
        torch._foreach_lerp_(mine, theirs, weight)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
