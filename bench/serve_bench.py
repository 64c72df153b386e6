"""Serving benchmark against peers (prints figures; not a test). Loopback only, bounded request counts.

    python bench/serve_bench.py --image byoc:dev [--image byoc:before] [--rounds 3] [--model-dir DIR]

Serves the same model, interleaved in each round, with: each --image as users run it (``docker run --network
host ... IMAGE serve``, its defaults), the canonical Flask + gunicorn sync server (2 sync workers x 1 torch
thread) and LitServe (2 inference workers x 1 thread; bench/requirements.txt) when installed. Each round first
measures the in-process ceiling (the predictor alone, batch 1, in the best of three layouts: 2 processes x 1
torch thread, 1 process x 2 torch threads, and 1 process with 2 Python threads of 1 torch thread each; all
with the image's malloc thresholds), then per
server: launch -> first correct prediction (cold start; the image's log adds its startup timeline), req/s and
p99 at concurrency 1 and 16 with a 256 x 256 uint8 npy body, health-check p99 on fresh connections while
concurrency 16 saturates it, the peak RSS and PSS summed over the server's processes under that load, and at
saturation the server's CPU time per request and the shares of the machine's CPU taken by the server's processes
and by this load generator, and left idle.
Prints medians over rounds and each server's c=16 throughput as a ratio to the median ceiling.
Without --model-dir it serves an untrained U-Net of --base-channels (same compute as a trained one).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from serve_load import closed_loop, first_prediction, percentile, sample_health  # noqa: E402
from serve_peers import (  # noqa: E402
    ImageServer,
    LitServer,
    Server,
    SyncServer,
    cpu_seconds,
    litserve_installed,
    machine_idle,
    memory_mib,
)


def _ceiling_worker(model_dir: str, threads: int, size: int, seconds: float, barrier, out, lanes: int = 1) -> None:
    """``lanes`` Python threads of one process predicting back to back, each on ``threads`` torch threads."""
    sys.path.insert(0, str(REPO))
    import torch

    from serve.predictor import Predictor

    p = Predictor.from_model_dir(Path(model_dir), device="cpu", cpu_threads=threads)
    torch.set_num_threads(threads)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    for _ in range(2):
        p.predict([image])
    counts = [0] * lanes

    def lane(i: int) -> None:
        while time.perf_counter() < stop:
            p.predict([image])
            counts[i] += 1

    barrier.wait()
    start = time.perf_counter()
    stop = start + seconds
    pool = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(sum(counts) / (time.perf_counter() - start))


def ceiling(model_dir: Path, size: int, seconds: float) -> dict[str, float]:
    """images/s of the predictor alone (prepare, forward, finish), per layout: processes x Python threads x
    torch threads, with the image's malloc settings."""
    import multiprocessing as mp

    from container.malloc import MMAP_THRESHOLD, TRIM_THRESHOLD

    ctx = mp.get_context("spawn")
    rows = {}
    # The image's malloc thresholds (container/malloc.py) in the ceiling's processes too: read by glibc at start.
    tuned = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    saved = {k: os.environ.get(k) for k in tuned}
    os.environ.update(tuned)
    try:
        for layout in ((2, 1, 1), (1, 1, 2), (1, 2, 1)):
            rows.update(_ceiling_layout(ctx, model_dir, size, seconds, *layout))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return rows


def _ceiling_layout(ctx, model_dir: Path, size: int, seconds: float, procs: int, lanes: int, threads: int
                    ) -> dict[str, float]:
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=_ceiling_worker, args=(str(model_dir), threads, size, seconds, barrier, out, lanes))
          for _ in range(procs)]
    for p in ps:
        p.start()
    images_per_s = sum(out.get(timeout=600) for _ in ps)
    for p in ps:
        p.join()
    return {f"{procs}x{lanes}x{threads}": images_per_s}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(server: Server, model_dir: Path, npy: bytes, expected: np.ndarray, args, log_dir: Path) -> dict:
    def correct(body: bytes) -> bool:
        return np.allclose(np.load(io.BytesIO(body)), expected, atol=1e-3)

    def well_formed(body: bytes) -> bool:  # cheap under load: the answer's header and size
        return body[:6] == b"\x93NUMPY" and len(body) >= expected.nbytes

    port, call = free_port(), server.call(npy)
    started = time.monotonic()
    running = server.launch(port, model_dir, log_dir)
    try:
        cold = first_prediction(port, call, correct, started, running.alive)
        closed_loop(port, call, 2 * server.workers, 4 * server.workers, well_formed)  # every worker warm
        c1 = closed_loop(port, call, 1, args.requests_c1, well_formed)
        busy, health, peak = threading.Event(), [], {"rss": 0.0, "pss": 0.0}
        busy.set()

        def watch() -> None:
            time.sleep(1.0)  # let the load saturate the workers first
            pinger = threading.Thread(target=lambda: health.extend(sample_health(port, server.health, busy)))
            pinger.start()
            while busy.is_set():
                mem = memory_mib(running.pids())
                peak.update({k: max(peak[k], mem[k]) for k in ("rss", "pss")})
                time.sleep(0.5)
            pinger.join()

        watcher = threading.Thread(target=watch)
        watcher.start()
        pids = running.pids()
        cpu0, idle0, own0, t0 = cpu_seconds(pids), machine_idle(), _own_cpu_seconds(), time.perf_counter()
        sat = closed_loop(port, call, args.concurrency, args.requests, well_formed)
        cpu1, idle1, own1, t1 = cpu_seconds(pids), machine_idle(), _own_cpu_seconds(), time.perf_counter()
        machine_s = (t1 - t0) * len(os.sched_getaffinity(0))
        busy.clear()
        watcher.join()
        return {"cold_s": cold["first_prediction_s"], "c1": c1["req_per_s"], "c16": sat["req_per_s"],
                "p99_ms": sat["p99_ms"], "health_p99_ms": 1000 * percentile(health, 0.99),
                "health_n": len(health), "rss": peak["rss"], "pss": peak["pss"],
                "errors": c1["errors"] + sat["errors"], "timeline": _timeline(running.logs()),
                # Where the time goes at saturation: the server's CPU per request (the in-process ceiling's is
                # cores / ceiling) and the share of the machine left idle (waiting, not computing).
                "cpu_ms": 1000 * (cpu1 - cpu0) / max(1, sat["requests"]),
                "idle_pct": 100 * (idle1[1] - idle0[1]) / max(1, idle1[0] - idle0[0]),
                # Shares of the machine's CPU time during the c=16 load: the server's processes and this process
                # (the load generator's client threads, the health prober and the memory sampler).
                "server_pct": 100 * (cpu1 - cpu0) / machine_s, "loadgen_pct": 100 * (own1 - own0) / machine_s}
    finally:
        running.stop()


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timeline(logs: str) -> str:
    return " | ".join(line.split(": ", 1)[-1] for line in logs.splitlines() if "startup timeline" in line)


def servers(args) -> list[Server]:
    env = tuple(tuple(kv.split("=", 1)) for kv in args.env)
    out: list[Server] = [ImageServer(f"image {img}", "/ping", 2, image=img, env=env) for img in args.image]
    out.append(SyncServer("flask-sync", "/ping", 2))
    if litserve_installed():
        out.append(LitServer("litserve", "/health", 2))
    else:
        print("LitServe not installed (pip install -r bench/requirements.txt): skipped")
    return out


def make_model(args) -> Path:
    if args.model_dir:
        return args.model_dir.resolve()
    from model.artifact import save_model_dir
    from model.normals.config import UNetConfig
    from model.normals.family import SurfaceNormals

    model_dir = Path(tempfile.mkdtemp(prefix="bench-model-"))
    os.chmod(model_dir, 0o755)
    fam, cfg = SurfaceNormals(), UNetConfig(base_channels=args.base_channels, depth=4)
    save_model_dir(model_dir, fam, cfg, fam.build(cfg), fam.preprocessing(cfg, args.size))
    return model_dir


def report(names: list[str], runs: dict[str, list[dict]], ceilings: list[dict[str, float]]) -> None:
    best = [max(c.values()) for c in ceilings]
    ceiling_med = statistics.median(best)
    print(f"\nin-process ceiling, best layout per round: {[round(b, 2) for b in best]} images/s, median "
          f"{ceiling_med:.2f}")
    cores = len(os.sched_getaffinity(0))
    print(f"CPU per image of the ceiling: {1000 * cores / ceiling_med:.0f} ms ({cores} cores / ceiling)")
    head = ("server", "cold start s", "c=16 req/s", "/ceiling", "p99 c=16 ms", "c=1 req/s", "health p99 ms",
            "RSS MB", "PSS MB", "CPU ms/req", "server %", "load gen %", "idle %", "errors")
    print("\nmedians of rounds:\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name in names:
        rs = runs[name]

        def med(key: str, rs: list[dict] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        cells = (name, f"{med('cold_s'):.2f}", f"{med('c16'):.2f}", f"{med('c16') / ceiling_med:.2f}",
                 f"{med('p99_ms'):.0f}", f"{med('c1'):.2f}", f"{med('health_p99_ms'):.1f}",
                 f"{med('rss') * 1.048576:.0f}", f"{med('pss') * 1.048576:.0f}", f"{med('cpu_ms'):.0f}",
                 f"{med('server_pct'):.1f}", f"{med('loadgen_pct'):.1f}", f"{med('idle_pct'):.1f}",
                 str(sum(r['errors'] for r in rs)))
        print("| " + " | ".join(cells) + " |")
        print(f"    rounds: c=16 {[round(r['c16'], 2) for r in rs]}, cold {[round(r['cold_s'], 2) for r in rs]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", action="append", default=[], help="image to serve (repeatable: before/after)")
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--base-channels", type=int, default=32, help="U-Net width when no --model-dir is given")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=96, help="requests at the high concurrency, per round")
    ap.add_argument("--requests-c1", type=int, default=16, help="requests at concurrency 1, per round")
    ap.add_argument("--ceiling-seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the image's containers")
    args = ap.parse_args()
    args.image = args.image or ["byoc:latest"]

    import torch

    from serve.predictor import Predictor

    torch.set_num_threads(1)
    model_dir = make_model(args)
    image = np.random.default_rng(1).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    np.save(buf, image)
    expected = Predictor.from_model_dir(model_dir, device="cpu", cpu_threads=1).predict([image])[0]
    todo = servers(args)
    print(f"model {model_dir}; {args.size}x{args.size} npy; cpus {len(os.sched_getaffinity(0))}; "
          f"{args.rounds} interleaved rounds")
    runs: dict[str, list[dict]] = {s.name: [] for s in todo}
    ceilings = []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as log_dir:
        for r in range(args.rounds):
            ceilings.append(ceiling(model_dir, args.size, args.ceiling_seconds))
            print(f"\nround {r + 1}: ceiling " + ", ".join(f"{k} {v:.2f}" for k, v in ceilings[-1].items()))
            for server in todo[r % len(todo):] + todo[:r % len(todo)]:  # a different server first each round
                m = measure(server, model_dir, buf.getvalue(), expected, args, Path(log_dir))
                runs[server.name].append(m)
                print(f"  {server.name}: cold {m['cold_s']:.2f} s, c=16 {m['c16']:.2f} req/s p99 {m['p99_ms']:.0f} "
                      f"ms, c=1 {m['c1']:.2f}, health p99 {m['health_p99_ms']:.1f} ms ({m['health_n']}), RSS "
                      f"{m['rss']:.0f} MiB PSS {m['pss']:.0f} MiB, CPU {m['cpu_ms']:.0f} ms/req, idle "
                      f"{m['idle_pct']:.1f}%, errors {m['errors']}")
                if m["timeline"]:
                    print(f"    {m['timeline']}")
    report([s.name for s in todo], runs, ceilings)


if __name__ == "__main__":
    main()
