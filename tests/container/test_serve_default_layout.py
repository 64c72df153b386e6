"""The real container in its default CPU layout: one worker whose inference threads use the cores, forked from a
master that imported torch first; and what happens when that only worker dies under load.

With one worker, a crash leaves no sibling to answer: the master keeps the listening socket open, so fresh
connections wait in its backlog while the replacement starts. SageMaker gives /ping 2 s; importing torch alone
took 1.7-2.3 s on a 2-core AVX2 CPU, so the replacement must not import it: it forks from the master that already
did, and only loads and warms the model.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.container.serve_harness import (
    kill_worker,
    ping_every_100_ms,
    png_load,
    start,
    timed_ping,
    wait_for_workers,
    workers,
)
from tests.polling import wait_until

pytestmark = pytest.mark.container

#: The container's proportional set size once its worker is warm, before any request: 328 MiB measured with the
#: default U-Net (the same as with a master that never imported torch: the worker shares its pages).
IDLE_PSS_MAX_KIB = 400 << 10

#: Every process's ``Pss:`` (KiB) and whether the master (PID 1) maps libtorch; the grep itself adds ~1 MiB.
_MEMORY = "grep '^Pss:' /proc/[0-9]*/smaps_rollup; grep -c libtorch /proc/1/maps"


def _memory(served) -> tuple[int, str]:
    _, out = served.container.exec_run(["sh", "-c", _MEMORY])
    lines = out.decode().splitlines()
    return sum(int(line.split()[1]) for line in lines[:-1]), lines[-1].strip()


def _log_time(lines: list[str], text: str, occurrence: int) -> float:
    """The wall-clock time of the ``occurrence``-th log line holding ``text`` (logging's asctime: UTC here)."""
    line = [line for line in lines if text in line][occurrence - 1]
    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.replace(tzinfo=UTC).timestamp()


def test_one_worker_with_an_inference_thread_per_core_sharing_the_masters_torch(image, default_unet_dir):
    s = start(image, default_unet_dir)
    try:
        assert len(wait_for_workers(s, 1)) == 1
        cores = int(s.container.exec_run(["nproc"]).output.decode())
        layout = re.search(r"(\d+) worker\(s\) x (\d+) HTTP threads and (\d+) inference thread\(s\) of (\d+) torch",
                           s.logs())
        assert layout, s.logs()
        lanes = min(cores, 4)
        assert layout.groups() == ("1", str(32 * lanes), str(lanes), str(max(1, cores // lanes)))
        pss, torch_maps = _memory(s)
        assert torch_maps != "0", "the master did not import torch: a replacement worker would have to"
        assert pss < IDLE_PSS_MAX_KIB, f"the idle container holds {pss >> 10} MiB PSS"
        _, _, body = s.request("GET", "/execution-parameters")
        assert f'"MaxConcurrentTransforms": {lanes}' in body.decode()
    finally:
        s.stop()


def test_the_only_worker_killed_under_load_is_replaced_before_a_ping_times_out(image, default_unet_dir):
    s = start(image, default_unet_dir)
    stop, pings, statuses, turn = threading.Event(), [], [], threading.Lock()
    threads = [threading.Thread(target=ping_every_100_ms, args=(s, stop, pings, turn))]
    threads += [threading.Thread(target=png_load, args=(s, stop, statuses)) for _ in range(3)]
    try:
        [victim] = wait_for_workers(s, 1)
        for t in threads:
            t.start()
        wait_until(lambda: len(statuses) >= 10, 60, "ten requests answered under load", interval=0.05)
        with turn:  # between two pings: one in flight on the victim would die with it (the crash, not the restart)
            kill_worker(s, victim)
            killed_at, killed_wall = time.monotonic(), time.time()
            first = timed_ping(s)  # sent while no worker exists: it waits in the master's backlog
        wait_until(lambda: s.logs().count("model ready") >= 2, 60, "the replacement worker ready", interval=0.05)
        answered = len(statuses)
        wait_until(lambda: statuses[answered:].count(200) >= 10, 30, "requests answered by the replacement",
                   interval=0.05)
        stop.set()
        for t in threads:
            t.join(15)
        [replacement] = workers(s)
        assert replacement != victim
        during = [(killed_at, *first)] + [p for p in pings if p[0] >= killed_at]
        failed = [(round(t - killed_at, 2), status, round(took, 3)) for t, status, took in during if status != 200]
        assert not failed, f"{len(failed)} of {len(during)} pings failed (s after kill, status, seconds): {failed}"
        # Proof that the pings spanned the restart: the replacement logged its model ready after the first ping
        # was sent (log times are the container's wall clock, the host's; milliseconds).
        ready_wall = _log_time(s.logs().splitlines(), "model ready", 2)
        assert ready_wall > killed_wall, f"the replacement was ready {killed_wall - ready_wall:.3f} s before the kill"
        print(f"pings through the restart: the replacement was ready {ready_wall - killed_wall:.2f} s after the "
              f"kill; the first ping took {first[1]:.2f} s, the slowest {max(took for _, _, took in during):.2f} s "
              f"({len(during)} pings)")
    finally:
        stop.set()
        s.stop()
