"""glibc's malloc, tuned once per process tree: serving and training both allocate and free a forward pass's
buffers many times a second, which glibc's defaults handle poorly.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import MutableMapping
from typing import Any

#: mallopt(3) parameters, each with the environment variable that sets it (and then wins over us).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
MALLOC_ARENAS = 2
#: Buffers up to this size come from the heap, the most glibc allows on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept for the next pass rather than returned at once (a serving worker's idle
#: trim, serve/heap.py, returns most of it once it has had nothing to do).
TRIM_THRESHOLD = 1 << 30
_TUNING = (
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, MALLOC_ARENAS),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
)


def tune_malloc(*, arenas: bool, libc: Any = None, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Tune glibc's malloc for this process and, through ``environ``, every process it starts; returns what was set.

    Called by the serving master before forking (workers inherit it) and by ``train`` before the job starts
    (loader workers fork, torchrun's processes read the environment).

    - At most 2 arenas (``arenas``, serving only): with 32 HTTP threads per worker glibc opens up to 8 arenas
      per core, and freed request memory stays spread over them: in a 10-minute soak (bench/soak.py) worker RSS
      rose +8 MiB/min; with 2 arenas it stayed flat (465 -> 489 MiB, slope -0.9 MiB/min) at the same throughput.
    - Fixed mmap and trim thresholds: with glibc's defaults each forward pass gave part of its activations back
      to the OS when it freed them, and the next pass faulted them in again, page by page. Measured in one
      process with 2 inference threads (7.2 M-parameter U-Net, 256 x 256, 40 images, 4 interleaved runs):
      2,954-8,728 page faults and 120-130 ms of CPU per image by default, 1,072-1,424 faults and 111-115 ms
      with these thresholds (16.6-17.6 images/s against 14.2-16.2; a later set of runs showed no difference in
      process). In the serving container at c=16: ~6,500 faults and 125 ms of CPU per request by default, 410-447
      and 117-121 ms with them. The price: an idle worker's trim leaves ~46 MiB of heap fragmentation after
      512 x 512 requests (264 -> 582 -> 310 MiB), where the defaults left ~15.
      Training gains too: 128 px, batch 16, bf16, 2 threads, 2 interleaved runs each: the training loop 116.6-120.1
      images/s against 111.4-113.8, the compute ceiling on tensors in memory 96.9-97.3 against 84.8-85.8.

    A variable in the environment (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``)
    or any ``GLIBC_TUNABLES`` leaves that setting to glibc. Nothing happens where the C library is not glibc.
    """
    environ = os.environ if environ is None else environ
    try:
        libc = ctypes.CDLL("libc.so.6") if libc is None else libc
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return []
    if environ.get("GLIBC_TUNABLES"):
        return []
    done = []
    for name, param, value in _TUNING:
        if (arenas or param != _M_ARENA_MAX) and not environ.get(name) and mallopt(param, value):
            environ[name] = str(value)  # glibc reads these at a new process's start
            done.append(f"{name}={value}")
    return done
