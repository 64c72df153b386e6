"""Load generation for bench/serve_bench.py: closed-loop clients, health sampling, first-correct-prediction probe.

Loopback HTTP/1.1 with keep-alive connections (one per client thread), as SageMaker's front end keeps them.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    """One HTTP request, sent as is every time."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _send(conn: http.client.HTTPConnection, call: Call) -> tuple[int, bytes]:
    conn.request(call.method, call.path, call.body, call.headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def closed_loop(port: int, call: Call, concurrency: int, total: int, check: Callable[[bytes], bool]) -> dict:
    """``concurrency`` clients, each sending its next request when the previous one is answered, ``total`` in all.

    A request counts as an error unless it is a 200 whose body passes ``check`` (a wrong answer is no answer).
    """
    latencies: list[float] = []
    errors = [0]
    remaining = [total]
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                status, body = _send(conn, call)
                good = status == 200 and check(body)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                good = False
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors[0] += not good
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"req_per_s": (len(latencies) - errors[0]) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99), "errors": errors[0], "requests": len(latencies)}


def sample_health(port: int, path: str, busy: threading.Event, interval: float = 0.05) -> list[float]:
    """Latencies of health checks on fresh connections (as a load balancer's probe) while ``busy`` is set.

    A failed or non-200 check counts as its elapsed time plus a 2 s penalty (SageMaker's /ping deadline).
    """
    latencies = []
    while busy.is_set():
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = _send(conn, Call("GET", path))
            conn.close()
            penalty = 0.0 if status == 200 else 2.0
        except (OSError, http.client.HTTPException):
            penalty = 2.0
        latencies.append(time.perf_counter() - start + penalty)
        time.sleep(interval)
    return latencies


def first_prediction(port: int, call: Call, check: Callable[[bytes], bool], started: float,
                     alive: Callable[[], bool], deadline_s: float = 120.0) -> dict:
    """Seconds from ``started`` (the launch) to the first health-independent correct prediction.

    Polls ``call`` every 10 ms on a fresh connection; also notes the first answer of any kind (the port open).
    """
    first_answer = None
    while time.monotonic() - started < deadline_s:
        if not alive():
            raise RuntimeError("the server exited before its first prediction")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status, body = _send(conn, call)
            conn.close()
            now = time.monotonic() - started
            first_answer = first_answer if first_answer is not None else now
            if status == 200 and check(body):
                return {"first_answer_s": first_answer, "first_prediction_s": now}
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no correct prediction within {deadline_s:g} s")
