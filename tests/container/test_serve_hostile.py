"""The real container against a hostile corpus (>= 200 distinct malformed, oversized and odd requests) and a
sweep of batch record counts: no 5xx, no worker death, each worker's peak memory under the README's bound,
and /ping green throughout (polled on fresh connections every 100 ms)."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time

import numpy as np
import pytest

from tests.container.hostile import corpus, odd_but_valid
from tests.container.serve_harness import start, wait_for_ping, wait_for_workers, workers
from tests.integration.serve_support import npy_bytes, png_bytes, random_image

pytestmark = pytest.mark.container

MAX_SIDE = 256
BASE_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SERVE_MAX_IMAGE_PIXELS": str(MAX_SIDE * MAX_SIDE)}
#: The README's bound per pixel a worker holds (SERVE_WORKER_MAX_PIXELS): measured ~1.1 KB for the default
#: U-Net on CPU, more than any smaller model needs.
BYTES_PER_PIXEL = 1200
#: Allocator slack and lazily imported modules (Pillow plugins, json) over the idle worker's peak.
SLACK = 96 << 20


class PingWatch:
    """Fresh-connection /ping every 100 ms on a thread; ``failures`` lists every non-200."""

    def __init__(self, served) -> None:
        self.served, self.count, self.failures = served, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            status = self.served.ping(timeout=2.0)
            self.count += 1
            if status != 200:
                self.failures.append((time.monotonic(), status))

    def __enter__(self) -> PingWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _peak_bytes(served) -> dict[int, int]:
    return {pid: hwm * 1024 for pid, (_, hwm) in workers(served).items()}


def _check_workers(served, before: dict[int, int], largest_body: int) -> None:
    after = _peak_bytes(served)
    assert set(after) == set(before), f"a worker died: {sorted(before)} -> {sorted(after)}\n{served.logs()[-3000:]}"
    for pid, peak in after.items():
        bound = before[pid] + MAX_SIDE * MAX_SIDE * BYTES_PER_PIXEL + 2 * largest_body + SLACK
        assert peak <= bound, f"worker {pid} peaked at {peak >> 20} MiB, over the bound of {bound >> 20} MiB"


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_hostile_corpus_gets_no_5xx_kills_no_worker_and_keeps_memory_bounded(image, trained_model_dir, mode):
    env = dict(BASE_ENV, **({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"} if mode == "batch" else {}))
    s = start(image, trained_model_dir, env)
    try:
        wait_for_workers(s, 2)
        before = _peak_bytes(s)
        seen, bad, largest, valid = set(), [], 0, {name for name, _, _ in odd_but_valid(MAX_SIDE)}
        with PingWatch(s) as pings:
            for name, body, headers in corpus(MAX_SIDE):
                seen.add((body, tuple(sorted(headers.items()))))
                largest = max(largest, len(body))
                status, _, data = s.request("POST", "/invocations", body, headers, timeout=60)
                # Odd but valid files are answered (406 only where npy or PNG cannot hold a ragged batch).
                if status >= 500 or (name in valid and status not in (200, 406)):
                    bad.append((name, status, data[:200]))
            for junk in (b"GARBAGE\r\n\r\n", b"POST /invocations HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nx",
                         b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"\x00\xff" * 100):
                with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
                    sock.sendall(junk)
                    try:
                        reply = sock.recv(64)
                    except (TimeoutError, ConnectionResetError):
                        reply = b""
                    assert not reply.startswith(b"HTTP/1.1 5"), reply
        assert len(seen) >= 200
        assert not bad, bad
        assert pings.count >= 20 and not pings.failures, pings.failures
        _check_workers(s, before, largest)
        wait_for_ping(s, 5)
    finally:
        s.stop()


def test_batch_record_count_sweep_is_answered_in_full_and_in_order(image, trained_model_dir):
    s = start(image, trained_model_dir, dict(BASE_ENV, SAGEMAKER_BATCH="true"))
    try:
        wait_for_workers(s, 2)
        before = _peak_bytes(s)
        largest = 0
        with PingWatch(s) as pings:
            for n in (1, 2, 63, 64, 65, 500, 3000):
                sizes = [(3 + i % 5, 2 + i % 3) for i in range(n)]
                lines = "".join(json.dumps(random_image(h, w, i).tolist()) + "\n" for i, (h, w) in enumerate(sizes))
                status, _, data = s.request("POST", "/invocations", lines.encode(),
                                            {"Content-Type": "application/jsonlines"})
                assert status == 200, (n, data[:300])
                assert [tuple(json.loads(x)["shape"][:2]) for x in data.decode().splitlines()] == sizes
                largest = max(largest, len(lines))
            for n in (1, 65, 500, 2000):
                body = npy_bytes(np.stack([random_image(8, 8, i) for i in range(n)]))
                status, _, data = s.request("POST", "/invocations", body, {"Content-Type": "application/x-npy",
                                                                          "Accept": "application/x-npy"})
                assert status == 200, (n, data[:300])
                assert np.load(io.BytesIO(data)).shape == (n, 8, 8, 3)
                largest = max(largest, len(body))
            big = png_bytes(random_image(MAX_SIDE, MAX_SIDE))  # the largest image, many times: several slices
            body = "".join(json.dumps({"b64": base64.b64encode(big).decode()}) + "\n" for _ in range(16))
            status, headers, data = s.request("POST", "/invocations", body.encode(),
                                              {"Content-Type": "application/jsonlines"})
            assert status == 200 and len(data) == int(headers["content-length"])
            assert len(data.decode().splitlines()) == 16
        assert not pings.failures, pings.failures
        _check_workers(s, before, max(largest, len(body)))
    finally:
        s.stop()
