"""`python -m container serve` on the host: each worker logs where its start-up time went."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.serve_support import make_tiny_model_dir
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _status(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def served(tmp_path):
    """A 2-worker server on the host; yields (master pid, port, log path) once /ping says 200."""
    model_dir = make_tiny_model_dir(tmp_path / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SERVE_", "SM_", "MODEL_SERVER"))}
    env.update(PYTHONPATH=str(REPO), SM_MODEL_DIR=str(model_dir), SAGEMAKER_BIND_TO_PORT=str(port),
               SAGEMAKER_MODEL_SERVER_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "container", "serve"], env=env, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"/ping never said 200: {log_path.read_text()}"
            try:
                if _status(port, "GET", "/ping") == 200 and len(_children(proc.pid)) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        yield proc.pid, port, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_each_worker_logs_its_startup_timeline_in_seconds_since_process_start(served):
    _, _, log_path = served
    deadline = time.monotonic() + 10
    while len(lines := re.findall(r"startup timeline.*", log_path.read_text())) < 2:
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    steps = ["imports", "listening", "forked", "model loaded", "warm", "accepting"]
    for line in lines:
        marks = dict(re.findall(r"([a-z][a-z ]*) (\d+\.\d+)s", line.split("): ", 1)[1]))
        assert [s for s in steps if s in marks] == steps, line
        times = [float(marks[s]) for s in steps]
        assert times == sorted(times), f"steps out of order: {line}"
