"""The startup timeline: seconds since the process started, in step order."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from container.timeline import StartupTimeline, process_age

REPO = Path(__file__).resolve().parents[2]


def test_process_age_counts_from_the_process_start_not_from_the_call():
    code = "import time; time.sleep(0.5); from container.timeline import process_age; print(process_age())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert 0.5 <= float(out) < 30


def test_process_age_of_a_missing_process_is_unknown():
    assert process_age(pid=2**30) is None


def test_steps_are_seconds_since_the_origin_in_the_order_marked():
    timeline = StartupTimeline(origin=time.time() - 2.0)
    first = timeline.mark("settings")
    second = timeline.mark("listening")
    assert 2.0 <= first <= second < 30
    assert timeline.line() == f"settings {first:.2f}s, listening {second:.2f}s"


def test_a_wall_clock_stepping_back_never_reorders_steps():
    timeline = StartupTimeline(origin=time.time())
    timeline.mark("settings")
    timeline.origin += 5.0  # as if the clock jumped back 5 s
    assert timeline.mark("listening") >= timeline.steps[0][1]
