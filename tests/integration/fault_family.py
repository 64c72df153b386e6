"""The surface-normal family with faults on rank 0, steered by environment variables, for stop tests.

SLOW_STEP_AT=n, SLOW_STEP_S=s: rank 0 prints "slow step begins" in its n-th training loss computation and
then takes s seconds more, so a SIGTERM arriving then finds a step still running.
SIGTERM_PARENT_AT=n: rank 0 sends SIGTERM to its parent (torchrun, as PID 1 forwards it on StopTrainingJob)
in its n-th loss computation, training or validation.
"""

from __future__ import annotations

import os
import signal
import time

from model.normals.family import SurfaceNormals


def _setting(name: str) -> int:
    return int(os.environ.get(name, "0"))


class FaultySurfaceNormals(SurfaceNormals):
    def __init__(self) -> None:
        self.training_calls = 0
        self.calls = 0

    def loss(self, outputs, batch):
        if os.environ.get("RANK", "0") == "0":
            self.calls += 1
            if self.calls == _setting("SIGTERM_PARENT_AT"):
                os.kill(os.getppid(), signal.SIGTERM)
            if outputs.requires_grad:
                self.training_calls += 1
                if self.training_calls == _setting("SLOW_STEP_AT"):
                    print("slow step begins", flush=True)
                    time.sleep(float(os.environ.get("SLOW_STEP_S", "0")))
        return super().loss(outputs, batch)
