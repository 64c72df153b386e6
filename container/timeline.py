"""Startup timeline: seconds since this process was created, per step, logged as one line per worker.

The origin is the kernel's record of when the process started (``/proc/self/stat``), so the first step
includes the interpreter's own start-up and imports; in the image PID 1 starts with the container. Workers
inherit the master's steps through fork and add theirs, so each worker logs the whole path to its first
answer: master steps (settings, listening, forked) then its own (imports, model loaded, warm, accepting).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_age(pid: int | str = "self") -> float | None:
    """Seconds since process ``pid`` started (10 ms resolution), or None where /proc cannot say."""
    try:
        # Field 22 (starttime, clock ticks after boot); the command name (field 2) may hold spaces: split after ')'.
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])  # seconds after boot, same clock
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))


class StartupTimeline:
    def __init__(self, origin: float | None = None) -> None:
        #: Wall-clock time of the process start (``time.time()`` units).
        self.origin = origin if origin is not None else time.time() - (process_age() or 0.0)
        self.steps: list[tuple[str, float]] = []

    def mark(self, step: str) -> float:
        """Record ``step`` as done now; returns its seconds since the origin."""
        elapsed = max(0.0, time.time() - self.origin)
        if self.steps:  # steps are in order even when the wall clock steps back
            elapsed = max(elapsed, self.steps[-1][1])
        self.steps.append((step, elapsed))
        return elapsed

    def line(self) -> str:
        return ", ".join(f"{step} {seconds:.2f}s" for step, seconds in self.steps)
