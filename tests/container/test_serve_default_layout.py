"""The real container in its default CPU layout: one worker whose inference threads use the cores, under a
master that never loads torch; and what happens when that only worker dies under load.

With one worker, a crash leaves no sibling to answer: the master keeps the listening socket open, so fresh
connections wait in its backlog while the replacement starts (imports torch, loads, warms). SageMaker gives
/ping 2 s; the replacement must be answering well within that.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.container.serve_harness import kill_worker, ping_every_100_ms, png_load, start, wait_for_workers, workers
from tests.polling import wait_until

pytestmark = pytest.mark.container

#: A master without torch holds ~28 MiB (measured); with torch it held ~230 MiB.
MASTER_MAX_KIB = 80 << 10


def _master_status(served) -> tuple[int, str]:
    _, out = served.container.exec_run(["sh", "-c", "grep VmRSS /proc/1/status; grep -c libtorch /proc/1/maps"])
    rss_line, maps = out.decode().splitlines()[:2]
    return int(rss_line.split()[1]), maps.strip()


def test_one_worker_with_an_inference_thread_per_core_under_a_master_without_torch(image, default_unet_dir):
    s = start(image, default_unet_dir)
    try:
        assert len(wait_for_workers(s, 1)) == 1
        cores = int(s.container.exec_run(["nproc"]).output.decode())
        layout = re.search(r"(\d+) worker\(s\) x (\d+) HTTP threads and (\d+) inference thread\(s\) of (\d+) torch",
                           s.logs())
        assert layout, s.logs()
        lanes = min(cores, 4)
        assert layout.groups() == ("1", str(32 * lanes), str(lanes), str(max(1, cores // lanes)))
        rss, torch_maps = _master_status(s)
        assert torch_maps == "0", "the master mapped libtorch"
        assert rss < MASTER_MAX_KIB, f"the master holds {rss >> 10} MiB"
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
            killed_at = time.monotonic()
        wait_until(lambda: s.logs().count("model ready") >= 2, 60, "the replacement worker ready", interval=0.05)
        answered = len(statuses)
        wait_until(lambda: statuses[answered:].count(200) >= 10, 30, "requests answered by the replacement",
                   interval=0.05)
        stop.set()
        for t in threads:
            t.join(15)
        [replacement] = workers(s)
        assert replacement != victim
        during = [p for p in pings if p[0] >= killed_at]
        failed = [(round(t - killed_at, 2), status, round(took, 3)) for t, status, took in during if status != 200]
        assert not failed, f"{len(failed)} of {len(during)} pings failed (s after kill, status, seconds): {failed}"
        # The first ping after the kill waits in the master's backlog until the replacement answers (it imports
        # torch first, ~1 s here): proof that the pings spanned the restart.
        assert during and during[0][2] >= 0.1, f"the first ping after the kill took {during[0][2]:.3f} s"
        print(f"pings through the restart: the first took {during[0][2]:.2f} s, the slowest "
              f"{max(took for _, _, took in during):.2f} s ({len(during)} pings)")
    finally:
        stop.set()
        s.stop()
