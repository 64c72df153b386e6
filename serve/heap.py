"""The C heap of a serving process: how glibc's malloc is tuned before forking, and handing its free pages back
to the operating system when a worker has gone idle.

A forward pass allocates its activations with malloc (torch's CPU allocator) and frees them at the end, but
glibc keeps most freed memory in its arenas for reuse: measured in the serving container (2-core CPU, 7.2 M
parameter U-Net, 256 x 256), each worker held ~100-140 MiB more after its first predictions than when idle,
for as long as it lived. ``malloc_trim(0)`` returns every free page of every arena. After each forward it
cost ~9% of throughput (the next pass faults the pages back in), so the batcher calls it only once its
inference thread has had nothing to do for a while (``serve.batching``).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping
from typing import Any

#: Seconds without a forward pass before a worker returns its free heap. Under load passes follow each other
#: within milliseconds, so this never costs throughput; a request after an idle spell pays ~10-15 ms of page
#: faults once (measured with the U-Net above).
IDLE_TRIM_AFTER_S = 1.0


def heap_trimmer(libc: Any = None) -> Callable[[], bool] | None:
    """A function that returns free heap pages to the OS (True if any were), or None where the C library has
    no ``malloc_trim`` (musl, macOS): there is nothing to call."""
    try:
        libc = ctypes.CDLL("libc.so.6") if libc is None else libc
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None

    def release() -> bool:
        return bool(trim(0))

    return release


#: mallopt(3) parameters, each with the environment variable that sets it (and then wins over us).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
MALLOC_ARENAS = 2
#: Buffers up to this size come from the heap, the most glibc allows on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept for the next pass rather than returned at once (the idle trim above
#: still returns all of it once a worker has had nothing to do).
TRIM_THRESHOLD = 1 << 30
_TUNING = (
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, MALLOC_ARENAS),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
)


def tune_malloc(libc: Any = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Tune glibc's malloc in the master, before forking (workers inherit it); returns what was set.

    - At most 2 arenas: with 32 HTTP threads per worker glibc opens up to 8 arenas per core, and freed request
      memory stays spread over them: in a 10-minute soak (bench/soak.py) worker RSS rose +8 MiB/min; with 2
      arenas it stayed flat (465 -> 489 MiB, slope -0.9 MiB/min) at the same throughput.
    - Fixed mmap and trim thresholds: with glibc's defaults each forward pass gave part of its activations back
      to the OS when it freed them, and the next pass faulted them in again, page by page. Measured in one
      process with 2 inference threads (7.2 M-parameter U-Net, 256 x 256, 40 images, 4 interleaved runs):
      2,954-8,728 page faults and 120-130 ms of CPU per image by default, 1,072-1,424 faults and 111-115 ms
      with these thresholds (16.6-17.6 images/s against 14.2-16.2). Idle workers still return everything.

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
    return [f"{name}={value}" for name, param, value in _TUNING
            if not environ.get(name) and mallopt(param, value)]
