"""Hand the C heap's free pages back to the operating system when a worker has gone idle.

A forward pass allocates its activations with malloc (torch's CPU allocator) and frees them at the end, but
glibc keeps most freed memory in its arenas for reuse: measured in the serving container (2-core CPU, 7.2 M
parameter U-Net, 256 x 256), each worker held ~100-140 MiB more after its first predictions than when idle,
for as long as it lived. ``malloc_trim(0)`` returns every free page of every arena. After each forward it
cost ~9% of throughput (the next pass faults the pages back in), so the batcher calls it only once its
inference thread has had nothing to do for a while (``serve.batching``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
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

