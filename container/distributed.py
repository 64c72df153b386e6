"""Scale-out launch: one training process per GPU on every host, started by torchrun.

Why torchrun (``python -m torch.distributed.run`` of the torch in the image) and not the toolkit's runner:
the toolkit only runs torchrun/MPI for *script* entry points and does not forward SIGTERM (its issues 125,
173); torchrun ships with torch, forwards SIGTERM/SIGINT to its workers, sets RANK/WORLD_SIZE/LOCAL_RANK,
and fails the whole host when one worker fails. AWS's own PyTorch launcher does the same (see
docs: contract 1.13). PID 1 (the toolkit process running container.training:main) starts torchrun as its
child, forwards SIGTERM to it, and turns its outcome into /opt/ml/output/failure.

Topology (from /opt/ml/input/config/resourceconfig.json, never from host names):
  * hosts sorted as SageMaker lists them; node rank = index of current_host; master = hosts[0];
  * port BYOC_MASTER_PORT (default 7777, the port AWS's launchers use);
  * processes per host = number of GPUs (BYOC_PROCESSES_PER_HOST overrides; CPU-only hosts run 1, and Pipe
    mode always 1 because a FIFO has a single reader);
  * static rendezvous (``--node_rank``), so global rank 0 -- the only writer of /opt/ml/model, output data
    and checkpoints -- is always on hosts[0]; torchrun's c10d rendezvous would assign node ranks in
    arrival order instead.
Timeouts:
  * BYOC_PEER_TIMEOUT_S (default 600): every peer's DNS name must resolve, and every host must join the
    rendezvous at master:port, within this time; otherwise the job fails naming the host;
  * BYOC_COLLECTIVE_TIMEOUT_S (default 1800): a process blocked in one collective longer than this fails
    (a peer died or stalled) instead of hanging.
  (All BYOC_* knobs are parsed once, in train/settings.py.)
  * torchrun's shutdown timeout is SageMaker's whole 120 s stop grace (SAGEMAKER_STOP_GRACE_S).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from train.settings import TrainSettings

log = logging.getLogger("container.distributed")

#: SageMaker SIGKILLs the container 120 s after SIGTERM. torchrun, on the SIGTERM PID 1 forwards, SIGTERMs
#: its workers and SIGKILLs them after its shutdown timeout (default 30 s): that would cut rank 0 off in the
#: middle of a slow step plus its checkpoint while the failure file says a checkpoint was saved. Waiting
#: the whole grace leaves the last word to SageMaker's own deadline.
SAGEMAKER_STOP_GRACE_S = 120


class PeerError(RuntimeError):
    """A peer host never appeared (DNS or rendezvous) within the timeout."""


@dataclass(frozen=True)
class Layout:
    hosts: tuple[str, ...]
    current_host: str
    processes_per_host: int
    master_port: int
    network_interface: str | None
    peer_timeout_s: float

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def master(self) -> str:
        return self.hosts[0]

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.processes_per_host


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def plan(resource: dict, *, pipe: bool, settings: TrainSettings | None = None) -> Layout:
    """The job's layout from resourceconfig.json's content and the training settings (BYOC_*)."""
    settings = settings or TrainSettings()
    hosts = tuple(resource.get("hosts") or [resource.get("current_host", "algo-1")])
    current = resource.get("current_host", hosts[0])
    if current not in hosts:
        raise ValueError(f"resourceconfig.json: current_host {current!r} is not in hosts {list(hosts)}")
    nproc = settings.processes_per_host or max(1, _gpu_count())
    if pipe and nproc > 1:
        log.warning("Pipe input mode: one training process per host (a FIFO has one reader), not %d", nproc)
        nproc = 1
    return Layout(
        hosts=hosts,
        current_host=current,
        processes_per_host=nproc,
        master_port=settings.master_port,
        network_interface=resource.get("network_interface_name"),
        peer_timeout_s=settings.peer_timeout_s,
    )


def wait_for_hosts(hosts: tuple[str, ...], timeout_s: float, resolve=socket.gethostbyname) -> dict[str, str]:
    """Resolve every host, retrying (DNS lags at job start); PeerError names the first that never did."""
    deadline = time.monotonic() + timeout_s
    addresses: dict[str, str] = {}
    for host in hosts:
        delay = 0.2
        while True:
            try:
                addresses[host] = resolve(host)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise PeerError(f"host {host} did not resolve in DNS within {timeout_s:.0f} s ({exc}): the "
                                    f"peer never came up or is not on this job's network") from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
    return addresses


def worker_environment(layout: Layout, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    nic = layout.network_interface
    if nic and len(layout.hosts) > 1:
        if Path("/sys/class/net", nic).exists():
            # setdefault: a job's Environment may pin these itself.
            env.setdefault("NCCL_SOCKET_IFNAME", nic)
            env.setdefault("GLOO_SOCKET_IFNAME", nic)
        else:
            log.warning("network interface %r from resourceconfig.json does not exist here; letting NCCL/gloo "
                        "pick one", nic)
    env.setdefault("NCCL_DEBUG", "WARN")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // layout.processes_per_host)))
    # Also for torchrun builds that read only the environment (the flag in torchrun_command wins where known).
    env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] = str(SAGEMAKER_STOP_GRACE_S)
    env["BYOC_CURRENT_HOST"] = layout.current_host
    env["BYOC_HOSTS"] = json.dumps(list(layout.hosts))
    return env


def torchrun_command(layout: Layout, spec: Path) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={len(layout.hosts)}",
        f"--nproc_per_node={layout.processes_per_host}",
        f"--node_rank={layout.node_rank}",
        f"--master_addr={layout.master}",
        f"--master_port={layout.master_port}",
        "--rdzv_backend=static",
        f"--rdzv_conf=timeout={int(max(1, layout.peer_timeout_s))}",
        "--max_restarts=0",
        "--monitor_interval=1",
        f"--shutdown_timeout={SAGEMAKER_STOP_GRACE_S}",
        "--module", "container.worker", str(spec),
    ]


def run(layout: Layout, spec: Path) -> tuple[int, bool]:
    """Run torchrun until it exits; SIGTERM to PID 1 is forwarded. Returns (exit code, stopped by SIGTERM)."""
    addresses: dict[str, str] = {}
    if len(layout.hosts) > 1:
        addresses = wait_for_hosts(layout.hosts, layout.peer_timeout_s)
        log.info("peers resolved: %s", addresses)
    command = torchrun_command(layout, spec)
    log.info("host %s (node %d of %d): %s", layout.current_host, layout.node_rank, len(layout.hosts),
             " ".join(command))
    env = worker_environment(layout)
    env["BYOC_HOST_ADDRESSES"] = json.dumps(addresses)  # a dead peer's name no longer resolves: name it by IP
    proc = subprocess.Popen(command, env=env)
    stopped = False

    def forward(signum, _frame):
        nonlocal stopped
        stopped = True
        log.warning("SIGTERM: forwarding to torchrun (pid %d); workers checkpoint and stop", proc.pid)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, stopped


def describe_failure(layout: Layout, code: int) -> str:
    """The failure reason when torchrun failed and no worker wrote one (e.g. the rendezvous timed out)."""
    if len(layout.hosts) > 1:
        return (f"InternalError: on host {layout.current_host}: torchrun exited with code {code} before training "
                f"finished. If the log shows a rendezvous/store timeout, a peer host ({', '.join(layout.hosts)}) "
                f"did not join {layout.master}:{layout.master_port} within BYOC_PEER_TIMEOUT_S="
                f"{layout.peer_timeout_s:.0f} s (it failed to start or the port is blocked); otherwise see the "
                "log lines of the ranks on this host.")
    return (f"InternalError: on host {layout.current_host}: torchrun exited with code {code} (a training process "
            "was killed, e.g. out of memory); see the job's log.")
