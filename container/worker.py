"""One training process of a scale-out job: ``torchrun ... -m container.worker SPEC.json``.

container/training.py (PID 1) writes SPEC.json -- hyperparameters, channel paths and modes, output
paths -- and container/distributed.py starts torchrun, which starts this module once per GPU on each
host with RANK/WORLD_SIZE/LOCAL_RANK set. Failures go to /opt/ml/output/failure (first writer wins),
prefixed with the host and rank; a lost peer is named by host, not only by IP address.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sys
import traceback
from pathlib import Path

from train.errors import TrainingStopped, UserError

log = logging.getLogger("container.worker")


def peers_in(message: str, hosts: list[str], resolve=socket.gethostbyname) -> list[str]:
    """Host names of the peer IP addresses ``message`` mentions (gloo and NCCL name only IPs)."""
    ips = set(re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", message))
    if not ips:
        return []
    known = json.loads(os.environ.get("BYOC_HOST_ADDRESSES") or "{}")  # resolved by PID 1 at start
    named = []
    for host in hosts:
        try:
            if (known.get(host) or resolve(host)) in ips:
                named.append(host)
        except OSError:
            continue
    return named


def finished_marker(spec: Path, local_rank: int) -> Path:
    return spec.with_name(f"{spec.stem}.finished.{local_rank}")


def main(argv: list[str]) -> int:
    from container.training import write_failure
    from model.family import DataFormatError
    from model.runtime import available_cpus, select_runtime
    from train.config import parse_hyperparameters
    from train.distributed import init_from_env, shutdown
    from train.loop import TrainJob, TrainPaths, run

    spec = json.loads(Path(argv[0]).read_text())
    host = os.environ.get("BYOC_CURRENT_HOST", spec.get("current_host", "?"))
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=f"%(asctime)s %(levelname)s [{host} rank {rank}] %(name)s: %(message)s")
    where = f"on host {host} (rank {rank})"
    try:
        config, family, arch = parse_hyperparameters(spec["hyperparameters"])
        dist = init_from_env()
        import torch

        if torch.cuda.is_available():
            runtime = select_runtime(config.precision, device=f"cuda:{dist.local_rank}",
                                     channels_last=config.channels_last)
        else:
            runtime = select_runtime(config.precision, channels_last=config.channels_last,
                                     cpu_threads=max(1, available_cpus() // dist.local_world_size))
        paths = TrainPaths(
            channels={k: Path(v) for k, v in spec["channels"].items()},
            model_dir=Path(spec["model_dir"]),
            output_data_dir=Path(spec["output_data_dir"]),
            checkpoint_dir=Path(spec["checkpoint_dir"]),
            sharded=frozenset(spec.get("sharded", [])),
            pipe=frozenset(spec.get("pipe", [])),
        )
        job = TrainJob(config, family, arch, paths, runtime, dist)
        signal.signal(signal.SIGTERM, lambda *_: (log.warning("SIGTERM: checkpointing and stopping"),
                                                   job.stop.set()))
        run(job)
        shutdown(dist)  # only on success: after a failure peers may never reach the closing barrier
        # Tells PID 1 this process finished, even if a late SIGTERM makes torchrun itself exit non-zero.
        finished_marker(Path(argv[0]), dist.local_rank).touch()
        return 0
    except (UserError, DataFormatError) as exc:  # a DataFormatError names a file that breaks the data format
        write_failure(f"UserError: {exc} ({where})")
        log.error("UserError: %s", exc)
        return 1
    except TrainingStopped as exc:
        write_failure(f"Stopped: {exc}")
        log.warning("%s", exc)
        return 143
    except Exception as exc:
        peers = peers_in(str(exc), spec.get("hosts", []))
        lost = f": lost contact with host {', '.join(peers)}" if peers else ""
        head = f"InternalError: {where}{lost}: {type(exc).__name__}: {exc}"
        fix = (" Fix: if a peer host is named, look at that host's log first (it probably failed or was "
               "stopped); otherwise this is likely a bug or an environment problem (memory, disk, GPU).\n")
        write_failure(head[:700] + fix + traceback.format_exc())
        log.exception("training failed %s", where)
        return 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a gloo group's background threads can abort the process while peers are
    # already gone, which torchrun would report as a failure after a successful run.
    os._exit(code)
