"""Running the serving image in tests and benchmarks: start, poll /ping, talk HTTP on loopback only."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

DEFAULT_IMAGE = "byoc:serve-dev"


@dataclass
class Served:
    container: Any
    port: int

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        timeout: float = 70.0,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def ping(self, timeout: float = 2.0) -> int:
        try:
            return self.request("GET", "/ping", timeout=timeout)[0]
        except (OSError, http.client.HTTPException):
            return 0

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def stop(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass


def start(
    image: str, model_dir: Path, env: dict[str, str] | None = None, *, wait_ready: bool = True,
    deadline_s: float = 120.0, volumes: dict[Path, str] | None = None, **run_options: Any,
) -> Served:
    """``docker run -p 127.0.0.1::8080 -v model_dir:/opt/ml/model:ro IMAGE serve``, polled until /ping is 200.

    ``volumes`` mounts more host paths read-only (host path -> container path); ``run_options`` go to
    ``containers.run`` (e.g. ``mem_limit="3g"``).
    """
    client = docker.from_env()
    mounts = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}}  # read-only, as on SageMaker
    mounts.update({str(host): {"bind": inside, "mode": "ro"} for host, inside in (volumes or {}).items()})
    container = client.containers.run(
        image, "serve", detach=True, environment=env or {},
        ports={"8080/tcp": ("127.0.0.1", None)}, volumes=mounts, **run_options,
    )
    port = 0
    end = time.monotonic() + 30
    while not port and time.monotonic() < end:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("8080/tcp")
        if bindings:
            port = int(bindings[0]["HostPort"])
        elif container.status == "exited":
            break
        else:
            time.sleep(0.05)
    served = Served(container, port)
    if wait_ready:
        wait_for_ping(served, deadline_s)
    return served


def wait_for_ping(served: Served, deadline_s: float = 120.0, poll_s: float = 0.05) -> float:
    """Seconds until /ping answers 200; raises with the container log if it never does."""
    start_t = time.monotonic()
    while time.monotonic() - start_t < deadline_s:
        if served.port and served.ping(timeout=1.0) == 200:
            return time.monotonic() - start_t
        served.container.reload()
        if served.container.status == "exited":
            raise RuntimeError(f"container exited before /ping answered 200:\n{served.logs()}")
        time.sleep(poll_s)
    raise TimeoutError(f"/ping not 200 within {deadline_s} s:\n{served.logs()}")


def wait_for_exit(served: Served, deadline_s: float) -> int:
    result = served.container.wait(timeout=deadline_s)
    return int(result["StatusCode"])


_WORKERS_SCRIPT = """
import os
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            stat = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
            status = dict(line.split(':', 1) for line in open(f'/proc/{pid}/status') if ':' in line)
        except OSError:
            continue
        if stat[1] == '1':  # children of PID 1 (the gunicorn master): the workers
            print(pid, status['VmRSS'].split()[0], status['VmHWM'].split()[0])
"""


def workers(served: Served) -> dict[int, tuple[int, int]]:
    """Worker PID -> (RSS, peak RSS) in KiB, read from /proc inside the container."""
    code, out = served.container.exec_run(["python", "-c", _WORKERS_SCRIPT])
    if code != 0:
        raise RuntimeError(out.decode(errors="replace"))
    rows = [line.split() for line in out.decode().splitlines() if line.strip()]
    return {int(pid): (int(rss), int(hwm)) for pid, rss, hwm in rows}


def wait_for_workers(served: Served, count: int, deadline_s: float = 60.0) -> dict[int, tuple[int, int]]:
    """Poll until ``count`` workers have loaded their model (/ping turns 200 with the first one)."""
    end = time.monotonic() + deadline_s
    while True:
        found = workers(served)
        if len(found) >= count and served.logs().count("model ready") >= count:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"{len(found)} of {count} workers ready after {deadline_s} s:\n{served.logs()[-3000:]}")
        time.sleep(0.1)


def host_pid(served: Served, pid: int) -> int:
    """The host's PID of the container's process ``pid`` (its PID namespace's number is the last of NSpid)."""
    for row in served.container.top(ps_args="-o pid")["Processes"]:
        try:
            status = Path(f"/proc/{row[0]}/status").read_text()
        except OSError:
            continue
        nspids = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if nspids and int(nspids[-1]) == pid:
            return int(row[0])
    raise LookupError(f"no process {pid} in the container")


def kill_worker(served: Served, pid: int) -> None:
    """SIGKILL the container's process ``pid`` from the host (a ``docker exec`` can take a second to start under
    load) and return once it is dead, at most 5 s later: gone, or a zombie whose other threads have all exited.

    A zombie alone is not enough: the thread-group leader turns zombie as soon as it exits itself, while its
    other threads (HTTP, inference) may still be tearing down the address space. The file table, and with it
    the worker's own listening socket, closes only when the last of them is gone; a connection the kernel
    queued there meanwhile is reset (the crash itself, not the restart the tests are about).
    """
    target = host_pid(served, pid)
    os.kill(target, signal.SIGKILL)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            state = next(line for line in Path(f"/proc/{target}/status").read_text().splitlines()
                         if line.startswith("State:"))
            threads = len(os.listdir(f"/proc/{target}/task"))
        except (OSError, StopIteration):
            return
        if "Z" in state.split()[1] and threads == 1:
            return
        time.sleep(0.002)


#: SageMaker's /ping timeout.
PING_TIMEOUT_S = 2.0


def timed_ping(served: Served) -> tuple[int, float]:
    """One fresh-connection /ping under SageMaker's timeout: (status or 0, seconds it took)."""
    t = time.monotonic()
    return served.ping(timeout=PING_TIMEOUT_S), time.monotonic() - t


def ping_every_100_ms(served: Served, stop: threading.Event, results: list[tuple[float, int, float]],
                      turn: threading.Lock | None = None) -> None:
    """Fresh-connection pings until ``stop``: (start, status or 0, seconds) each; ``turn`` held around each ping."""
    while not stop.is_set():
        t = time.monotonic()
        with turn or contextlib.nullcontext():
            results.append((t, *timed_ping(served)))
        stop.wait(max(0.0, 0.1 - (time.monotonic() - t)))


def png_load(served: Served, stop: threading.Event, statuses: list[int]) -> None:
    """Back-to-back 64 x 64 PNG predictions until ``stop`` (at most 2000): each status, 0 for a broken connection."""
    from tests.integration.serve_support import png_bytes, random_image

    body = png_bytes(random_image(64, 64))
    for _ in range(2000):
        if stop.is_set():
            return
        try:
            statuses.append(served.request("POST", "/invocations", body, {"Content-Type": "image/png",
                                                                        "Accept": "image/png"}, timeout=10)[0])
        except OSError:
            statuses.append(0)  # in flight on a killed worker
