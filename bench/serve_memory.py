"""Where the serving container's memory goes (prints figures; not a test).

    python bench/serve_memory.py --image byoc:dev [--model-dir DIR] [--env KEY=VALUE ...]

Starts the image as serve_bench.py does (``docker run --network host ... IMAGE serve``, its defaults) and reads
``/proc/<pid>/smaps_rollup`` of the master and of each worker at three moments: idle (every worker accepting,
no request yet), after one 256 x 256 prediction per worker, after a closed loop at concurrency 16 and after
--idle seconds without requests (an idle worker returns its free heap: serve/heap.py). Per
process it splits RSS into anonymous memory (Python heap, model weights, malloc arenas holding the forward's
buffers) and file-backed pages (torch's and Python's shared libraries), and PSS (shared pages divided among their
sharers: the container's real footprint) the same way; then the container's cgroup usage and the largest
file-backed mappings of one worker by PSS. Without --model-dir it serves an untrained U-Net of --base-channels.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from serve_load import Call, closed_loop, first_prediction  # noqa: E402
from serve_peers import ImageServer  # noqa: E402

FIELDS = ("Rss", "Anonymous", "Rss_File", "Pss", "Pss_Anon", "Pss_File", "Uss")


def rollup(pid: int) -> dict[str, float]:
    """MiB per smaps_rollup field of ``pid``, with Rss_File (RSS less anonymous pages) and Uss (private pages:
    what the process alone holds, freed when it exits)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) / 1024
    values["Rss_File"] = values["Rss"] - values["Anonymous"]
    values["Uss"] = values["Private_Clean"] + values["Private_Dirty"]
    return values


def processes(cid: str) -> dict[str, int]:
    """{"master": pid, "worker 1": pid, ...}: the master is the gunicorn process whose children are workers."""
    out = subprocess.run(["docker", "top", cid, "-o", "pid,ppid"], capture_output=True, text=True).stdout
    rows = [tuple(int(v) for v in line.split()) for line in out.splitlines()[1:] if line.split()]
    pids = {pid for pid, _ in rows}
    master = next(pid for pid, ppid in rows if ppid not in pids)
    workers = sorted(pid for pid, ppid in rows if ppid == master)
    return {"master": master, **{f"worker {i + 1}": pid for i, pid in enumerate(workers)}}


def cgroup_mib(cid: str) -> str:
    base = Path("/sys/fs/cgroup/memory/docker") / cid
    try:
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
        peak = int((base / "memory.max_usage_in_bytes").read_text()) / 2**20
    except OSError:
        return "cgroup: not readable here"
    return (f"cgroup: rss {int(stat['rss']) / 2**20:.0f} MiB, cache {int(stat['cache']) / 2**20:.0f} MiB, "
            f"peak usage {peak:.0f} MiB")


def show(moment: str, cid: str) -> None:
    procs = processes(cid)
    print(f"\n{moment}  ({cgroup_mib(cid)})")
    print("| process | " + " | ".join(f"{f} MiB" for f in FIELDS) + " |")
    total = dict.fromkeys(FIELDS, 0.0)
    for name, pid in procs.items():
        r = rollup(pid)
        for f in total:
            total[f] += r[f]
        print(f"| {name} | " + " | ".join(f"{r[f]:.0f}" for f in total) + " |")
    print("| **sum** | " + " | ".join(f"**{v:.0f}**" for v in total.values()) + " |")


class PeakWatch:
    """The highest RSS and PSS summed over the container's processes, sampled every 0.25 s while in use."""

    def __init__(self, cid: str) -> None:
        self.cid, self.rss, self.pss = cid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                found = [rollup(pid) for pid in processes(self.cid).values()]
            except (OSError, StopIteration):
                continue
            self.rss = max(self.rss, sum(r["Rss"] for r in found))
            self.pss = max(self.pss, sum(r["Pss"] for r in found))

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def largest_mappings(pid: int, top: int = 8) -> None:
    """The file-backed mappings of ``pid`` with the most PSS (summed over a file's segments)."""
    by_file: dict[str, list[float]] = {}
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and ":" not in head[0]:
            current = head[5] if len(head) > 5 and head[5].startswith("/") else None
        elif current and head[0] in ("Rss:", "Pss:"):
            by_file.setdefault(current, [0.0, 0.0])[head[0] == "Pss:"] += int(head[1]) / 1024
    print(f"\nlargest file-backed mappings of pid {pid} (RSS / PSS MiB):")
    for path, (rss, pss) in sorted(by_file.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {rss:6.1f} / {pss:6.1f}  {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--idle", type=float, default=3.0, help="seconds without requests before the last reading")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the container")
    args = ap.parse_args()
    from serve_bench import free_port, make_model

    args.model_dir = make_model(args)
    image = np.random.default_rng(1).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    np.save(buf, image)
    server = ImageServer(f"image {args.image}", "/ping", 2, image=args.image,
                         env=tuple(tuple(kv.split("=", 1)) for kv in args.env))
    call: Call = server.call(buf.getvalue())

    def answer(body: bytes) -> bool:
        return body[:6] == b"\x93NUMPY"

    port = free_port()
    with tempfile.TemporaryDirectory() as log_dir:
        running = server.launch(port, args.model_dir, Path(log_dir))
        try:
            deadline = time.monotonic() + 120
            def accepting() -> bool:  # each worker logs its timeline once accepting
                layout = re.search(r"(\d+) worker\(s\)", logs := running.logs())
                return bool(layout) and logs.count("startup timeline") >= int(layout.group(1))

            while not accepting():
                if time.monotonic() > deadline or not running.alive():
                    raise TimeoutError(f"the workers did not start accepting:\n{running.logs()[-2000:]}")
                time.sleep(0.1)
            show("idle: every worker accepting, no request yet", running.cid)
            first_prediction(port, call, answer, time.monotonic(), running.alive)
            closed_loop(port, call, 2, 4, answer)
            show("after the first predictions (4 at concurrency 2)", running.cid)
            with PeakWatch(running.cid) as peak:
                done = closed_loop(port, call, 16, args.requests, answer)
            show(f"after {args.requests} requests at concurrency 16 ({done['req_per_s']:.2f} req/s, "
                 f"{done['errors']} errors; peak sum during them: RSS {peak.rss:.0f} MiB, PSS {peak.pss:.0f} MiB)",
                 running.cid)
            time.sleep(args.idle)  # the condition measured: a worker that has had nothing to do for a while
            show(f"after {args.idle:g} s without requests", running.cid)
            largest_mappings(processes(running.cid)["worker 1"])
        finally:
            running.stop()


if __name__ == "__main__":
    main()
