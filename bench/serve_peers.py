"""The servers bench/serve_bench.py compares, started the way their users start them, and their memory.

- ``image``: this project's image, ``docker run --network host ... IMAGE serve`` with its defaults.
- ``flask-sync``: the canonical Flask + gunicorn sync server (bench/peers/sync_app.py), 2 sync workers.
- ``litserve``: LitServe (bench/peers/lit_app.py), one inference process per worker, when it is installed.
The peers run on the host from the development environment (same torch build as the image: 2.13 CPU).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from serve_load import Call

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "bench" / "peers"


class Running(Protocol):
    def pids(self) -> list[int]: ...
    def alive(self) -> bool: ...
    def logs(self) -> str: ...
    def stop(self) -> None: ...


@dataclass
class Container:
    cid: str
    init_pid: int = 0

    def pids(self) -> list[int]:
        """The container's processes: its init process and descendants, read from /proc. The init PID is asked of
        Docker once; a `docker top` per call (the memory sampler's, every 0.5 s) cost the machine ~5% of its CPU
        during the load, taken from the image alone."""
        if not self.init_pid:
            out = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.cid], capture_output=True,
                                 text=True).stdout.strip()
            self.init_pid = int(out) if out.isdigit() else 0
        return process_tree(self.init_pid) if self.init_pid else []

    def alive(self) -> bool:
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.cid], capture_output=True,
                             text=True).stdout
        return out.strip() == "true"

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.cid], capture_output=True, text=True)
        return done.stdout + done.stderr

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.cid], capture_output=True)


@dataclass
class HostProcess:
    proc: subprocess.Popen
    log_path: Path

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and the workers it started
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The next server's cold start must not share the CPUs with this one's exiting workers.
        deadline = time.monotonic() + 15
        while _group_alive(self.proc.pid):
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                deadline = time.monotonic() + 15
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def process_tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def memory_mib(pids: list[int]) -> dict[str, float]:
    """RSS and PSS summed over ``pids`` (PSS splits shared pages among their sharers: the real footprint)."""
    rss = pss = 0
    for pid in pids:
        try:
            rss += _field(Path(f"/proc/{pid}/status").read_text(), "VmRSS:")
            pss += _field(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss:")
        except OSError:  # exited meanwhile
            continue
    return {"rss": rss / 1024, "pss": pss / 1024, "processes": len(pids)}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_idle() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values), values[3] + values[4]


def _field(text: str, name: str) -> int:
    line = next(ln for ln in text.splitlines() if ln.startswith(name))
    return int(line.split()[1])  # kB


@dataclass(frozen=True)
class Server:
    name: str
    health: str
    workers: int

    def call(self, npy: bytes) -> Call:
        return Call("POST", "/invocations", npy, {"Content-Type": "application/x-npy", "Accept": "application/x-npy"})

    def launch(self, port: int, model_dir: Path, log_dir: Path) -> Running:
        raise NotImplementedError


@dataclass(frozen=True)
class ImageServer(Server):
    image: str = ""
    env: tuple[tuple[str, str], ...] = ()

    def launch(self, port: int, model_dir: Path, log_dir: Path) -> Running:
        env = [f"--env={k}={v}" for k, v in (("SAGEMAKER_BIND_TO_PORT", str(port)), *self.env)]
        cid = subprocess.run(
            ["docker", "run", "-d", "--network", "host", *env, "-v", f"{model_dir}:/opt/ml/model:ro", self.image,
             "serve"], capture_output=True, text=True, check=True).stdout.strip()
        return Container(cid)


def _host_env(model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SERVE_", "SM_"))}
    # One torch thread per worker, as the image gives each of its 2 workers on 2 cores.
    env.update(MODEL_DIR=str(model_dir), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def _spawn(cmd: list[str], model_dir: Path, log_path: Path) -> Running:
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=_host_env(model_dir), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)
    log.close()
    return HostProcess(proc, log_path)


@dataclass(frozen=True)
class SyncServer(Server):
    def launch(self, port: int, model_dir: Path, log_dir: Path) -> Running:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        cmd = [gunicorn, "-w", str(self.workers), "-k", "sync", "-b", f"127.0.0.1:{port}", "--timeout", "300",
               "--chdir", str(PEERS), "sync_app:app"]
        return _spawn(cmd, model_dir, log_dir / f"{self.name}.log")


@dataclass(frozen=True)
class LitServer(Server):
    def call(self, npy: bytes) -> Call:
        boundary = uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="image.npy"\r\n'
                "Content-Type: application/x-npy\r\n\r\n").encode()
        body = head + npy + f"\r\n--{boundary}--\r\n".encode()
        return Call("POST", "/invocations", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def launch(self, port: int, model_dir: Path, log_dir: Path) -> Running:
        cmd = [sys.executable, str(PEERS / "lit_app.py"), str(port), str(self.workers)]
        return _spawn(cmd, model_dir, log_dir / f"{self.name}.log")


def litserve_installed() -> bool:
    try:
        import litserve  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: LitServe's form uploads)
    except ImportError:
        return False
    return True


def wait_gone(running: Running, deadline_s: float = 30.0) -> None:
    start = time.monotonic()
    while running.alive() and time.monotonic() - start < deadline_s:
        time.sleep(0.05)
