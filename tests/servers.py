"""Helper processes for tests (moto, a registry): start, poll until they answer over HTTP, stop."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def http_server(cmd: Sequence[str], probe_url: str, log_path: Path, timeout: float = 30) -> Iterator[None]:
    """Run ``cmd`` until the context exits; enter only once ``probe_url`` answers (any HTTP status)."""
    name = Path(cmd[0]).name
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(probe_url, timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{name} did not answer on {probe_url} (exit code {proc.poll()}): "
                                    f"{log_path.read_text(errors='replace')[-2000:]}")
                    time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
