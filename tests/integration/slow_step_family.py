"""The surface-normal family with one slow training step on rank 0, for stop-grace tests.

With SLOW_STEP_AT=n and SLOW_STEP_S=s in the environment, rank 0 prints "slow step begins" in its n-th
training loss computation and then takes s seconds more: SIGTERM arriving then finds a step still running.
"""

from __future__ import annotations

import os
import time

from model.normals.family import SurfaceNormals


class SlowStep(SurfaceNormals):
    def __init__(self) -> None:
        self.calls = 0

    def loss(self, outputs, batch):
        if outputs.requires_grad and os.environ.get("RANK", "0") == "0":
            self.calls += 1
            if self.calls == int(os.environ.get("SLOW_STEP_AT", "0")):
                print("slow step begins", flush=True)
                time.sleep(float(os.environ.get("SLOW_STEP_S", "0")))
        return super().loss(outputs, batch)
