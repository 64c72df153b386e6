"""How many CPUs this process may use, without importing torch: the serving master decides its process layout
from it before it imports torch."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs in this process's affinity mask (a container's ``--cpuset-cpus``), else all of the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
