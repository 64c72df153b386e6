"""Keep /invocations work even across workers: a worker holding more than its share sheds a keep-alive connection.

Keep-alive connections stick to the worker that accepted them, and the kernel spreads new connections over the
SO_REUSEPORT listeners by a hash of their addresses, not by load. Measured on a 2-core CPU with 16 keep-alive
clients: the two workers held 9:8, 12:5 and 10:7 connections in three tries, so one worker's queue was up to
2.4x the other's: p99 at concurrency 16 was 2.0-2.5 s against 1.55 s for gunicorn sync workers (which take a
new connection only when free), and the lighter worker idled once its few clients were done.

Each worker publishes its number of /invocations requests in flight in a slot of a shared array (created by the
master before forking; a slot is -1 while its worker is not accepting). After a prediction, a worker with more
than one request above the least loaded accepting sibling answers with ``Connection: close``: the client
reconnects and the kernel places the new connection afresh, until the loads are within one of each other.
Health checks and other routes are never closed, and a single worker never sheds.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterable
from typing import Any

NOT_ACCEPTING = -1
_ROUTE = "/invocations"


def shared_loads(workers: int) -> Any:
    """One slot per worker, in shared memory that forked workers inherit; every slot starts not accepting."""
    loads = multiprocessing.RawArray("i", workers)
    for i in range(workers):
        loads[i] = NOT_ACCEPTING
    return loads


def free_slot(loads: Any, taken: Iterable[int | None]) -> int | None:
    """The lowest slot no live worker holds (the master assigns it before forking), or None when all are held."""
    used = set(taken)
    return next((i for i in range(len(loads)) if i not in used), None)


def should_shed(loads: Any, slot: int) -> bool:
    """True when this worker has more than one request in flight above its least loaded accepting sibling."""
    others = [loads[i] for i in range(len(loads)) if i != slot and loads[i] != NOT_ACCEPTING]
    return bool(others) and loads[slot] > min(others) + 1


class ConnectionBalancer:
    """WSGI middleware counting this worker's /invocations in flight and closing a connection when it should shed.

    The close goes through gunicorn's response (``force_close`` on the object behind ``start_response``): WSGI
    applications may not set the hop-by-hop ``Connection`` header themselves.
    """

    def __init__(self, app: Callable, loads: Any, slot: int) -> None:
        self.app, self.loads, self.slot = app, loads, slot
        self._lock = threading.Lock()  # the slot is written by this worker's HTTP threads only

    def ready(self) -> None:
        with self._lock:
            self.loads[self.slot] = 0

    def _add(self, delta: int) -> None:
        with self._lock:
            self.loads[self.slot] = max(0, self.loads[self.slot] + delta)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != _ROUTE:
            return self.app(environ, start_response)

        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            if status.startswith("200") and should_shed(self.loads, self.slot):
                force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
                if force_close is not None:
                    force_close()
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        self._add(1)
        try:
            body = self.app(environ, start)
        except BaseException:
            self._add(-1)
            raise
        return _Closing(body, lambda: self._add(-1))


class _Closing:
    """The app's body, calling ``done`` once when the server closes it (after the last byte was written)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body, self._done = body, done

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()
