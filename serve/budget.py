"""A worker's pixel budget: how many decoded pixels its requests may hold at once, all together.

A request holds room for one slice of its images from decoding until the slice's answer bytes exist, so the
memory a worker spends on images (decoded arrays, model inputs and activations, outputs, answer bytes) is
bounded by ``capacity`` x bytes-per-pixel however many requests arrive. Requests beyond it wait in order of
arrival for room, then time out with 503 like a slow prediction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from serve.errors import Overloaded


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._used = 0
        self._cond = threading.Condition()
        self._queue: list[object] = []  # waiters, oldest first: a big slice is not starved by small ones

    @property
    def used(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        """Requests waiting for room."""
        return len(self._queue)

    @contextmanager
    def hold(self, pixels: int, deadline: float) -> Iterator[None]:
        """Room for ``pixels`` until the block ends; Overloaded if none frees up before ``deadline`` (monotonic)."""
        if pixels > self.capacity:
            raise ValueError(f"{pixels} pixels can never fit a budget of {self.capacity}")
        me = object()
        with self._cond:
            self._queue.append(me)
            try:
                ok = self._cond.wait_for(lambda: self._queue[0] is me and self._used + pixels <= self.capacity,
                                         timeout=max(0.0, deadline - time.monotonic()))
            finally:
                self._queue.remove(me)
                self._cond.notify_all()
            if not ok:
                raise Overloaded(
                    f"no room to decode {pixels} more pixels: this worker's other requests hold "
                    f"{self._used} of {self.capacity} (SERVE_WORKER_MAX_PIXELS) until the timeout; retry later"
                )
            self._used += pixels
        try:
            yield
        finally:
            with self._cond:
                self._used -= pixels
                self._cond.notify_all()
