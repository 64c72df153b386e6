"""One training process of a scale-out job: ``torchrun ... -m container.worker SPEC.json``.

container/training.py (PID 1) writes SPEC.json (a :class:`train.job.JobSpec`) and container/distributed.py
starts torchrun, which starts this module once per GPU on each host with RANK/WORLD_SIZE/LOCAL_RANK set.
Failures go to /opt/ml/output/failure (first writer wins), prefixed with the host and rank; a lost peer is
named by host, not only by IP address. Each process also leaves its :class:`Outcome` next to SPEC.json, so
PID 1 learns how every process ended (even when a late SIGTERM makes torchrun itself exit non-zero).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from container.jobtree import JobTree
from train.job import JobSpec
from train.outcome import STOPPED, SUCCEEDED, Outcome, outcome_of

log = logging.getLogger("container.worker")


def peers_in(message: str, hosts: list[str], known: Mapping[str, str] | None = None,
             resolve=socket.gethostbyname) -> list[str]:
    """Host names of the peer IP addresses ``message`` mentions (gloo and NCCL name only IPs).

    ``known``: addresses PID 1 resolved at start (BYOC_HOST_ADDRESSES); a dead peer may no longer resolve.
    """
    ips = set(re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", message))
    if not ips:
        return []
    known = known or {}
    named = []
    for host in hosts:
        try:
            if (known.get(host) or resolve(host)) in ips:
                named.append(host)
        except OSError:
            continue
    return named


def outcome_file(spec: Path, local_rank: int) -> Path:
    return spec.with_name(f"{spec.stem}.outcome.{local_rank}")


def read_outcomes(spec: Path, processes: int) -> list[Outcome | None]:
    """Each local process's outcome; None for one that wrote none (killed, e.g. out of memory)."""
    found: list[Outcome | None] = []
    for rank in range(processes):
        path = outcome_file(spec, rank)
        found.append(Outcome.from_json(path.read_text()) if path.exists() else None)
    return found


def _train(spec: JobSpec, settings) -> Outcome:
    from train.distributed import init_from_env, shutdown
    from train.job import build_job, stop_on
    from train.loop import run

    job = build_job(spec, settings,
                    join=lambda s: init_from_env(timeout_s=s.collective_timeout_s))
    stop_on(job)
    run(job)
    shutdown(job.dist)  # only on success: after a failure peers may never reach the closing barrier
    return SUCCEEDED


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    from train.settings import base_dir, settings_from_env

    environ = os.environ if environ is None else environ
    spec_path = Path(argv[0])
    spec = JobSpec.read(spec_path)
    host, rank = spec.current_host or "?", environ.get("RANK", "0")
    local_rank = int(environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=f"%(asctime)s %(levelname)s [{host} rank {rank}] %(name)s: %(message)s")
    where = f"on host {host} (rank {rank})"
    tree, known = JobTree(base_dir(environ)), {}
    try:
        settings = settings_from_env(environ)
        known = settings.host_addresses
        outcome = _train(spec, settings)
    except Exception as exc:
        outcome = outcome_of(exc, where, tuple(peers_in(str(exc), list(spec.hosts), known)))
        (log.warning if outcome.kind == STOPPED else log.error)("%s", outcome.line)
        tree.write_failure(outcome.line)
    outcome_file(spec_path, local_rank).write_text(outcome.to_json())
    return outcome.exit_code


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a gloo group's background threads can abort the process while peers are
    # already gone, which torchrun would report as a failure after a successful run.
    os._exit(code)
