"""Serving benchmark (prints figures; not a test). Loopback only, bounded request counts.

    python bench/serve_bench.py --image byoc:serve-dev [--model-dir DIR]

1. In-process ceiling, inside the image (same torch build): images/s of the predictor alone for several
   layouts (processes x threads x batch), the best of which is the bar for the server.
2. Cold start: ``docker run`` -> first 200 from /ping (median of --cold-runs).
3. The served container: req/s, p50, p99 at each concurrency for 256x256 PNG and npy bodies, /ping p99
   while concurrency 16 saturates the workers, and served/ceiling at the highest concurrency.
Without --model-dir it serves an untrained U-Net of --base-channels (same compute as a trained one).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# -- in-process ceiling (this part also runs inside the container) ---------------------------------------


def _ceiling_worker(model_dir: str, threads: int, batch: int, size: int, seconds: float, barrier, out) -> None:
    import torch

    from serve.predictor import Predictor

    p = Predictor.from_model_dir(Path(model_dir), device="cpu", cpu_threads=threads)
    torch.set_num_threads(threads)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    x = torch.stack([p.prepare(image)] * batch)
    for _ in range(2):
        p.forward(x)
    barrier.wait()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        y = p.forward(torch.stack([p.prepare(image)] * batch))
        for i in range(batch):
            p.finish(y[i], image.shape)
        n += batch
    out.put(n / (time.perf_counter() - start))


def ceiling(model_dir: str, size: int, seconds: float, which: str = "all") -> list[dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    cpus = len(os.sched_getaffinity(0))
    if which == "all":
        layouts = sorted({(1, cpus, 1), (1, cpus, 4), (cpus, 1, 1), (cpus, 1, 4)})
    else:
        layouts = [tuple(int(v) for v in which.split("x"))]
    rows = []
    for procs, threads, batch in layouts:
        barrier, out = ctx.Barrier(procs), ctx.Queue()
        ps = [ctx.Process(target=_ceiling_worker, args=(model_dir, threads, batch, size, seconds, barrier, out))
              for _ in range(procs)]
        for p in ps:
            p.start()
        total = sum(out.get(timeout=600) for _ in ps)
        for p in ps:
            p.join()
        rows.append({"processes": procs, "threads": threads, "batch": batch, "images_per_s": round(total, 2)})
    return rows


# -- load generation against the container ---------------------------------------------------------------


def _body(kind: str, size: int) -> tuple[bytes, str]:
    img = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    if kind == "png":
        from PIL import Image

        Image.fromarray(img).save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    np.save(buf, img)
    return buf.getvalue(), "application/x-npy"


def load(port: int, body: bytes, ctype: str, concurrency: int, total: int) -> dict:
    """Closed loop: ``concurrency`` threads, each with a keep-alive connection, ``total`` requests in all."""
    lat: list[float] = []
    errors = [0]
    counter = iter(range(total))
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": ctype, "Accept": "application/x-npy"})
            resp = conn.getresponse()
            resp.read()
            dt = time.perf_counter() - t
            with lock:
                lat.append(dt)
                errors[0] += resp.status != 200
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat.sort()
    return {"req_per_s": round(len(lat) / wall, 2), "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1), "errors": errors[0]}


def ping_while(port: int, busy: threading.Event, interval: float = 0.02, limit: int = 2000) -> list[float]:
    lat = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while busy.is_set() and len(lat) < limit:
        t = time.perf_counter()
        conn.request("GET", "/ping")
        conn.getresponse().read()
        lat.append(time.perf_counter() - t)
        time.sleep(interval)
    conn.close()
    return lat


def wait_ready(port_getter, deadline: float = 120.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        port = port_getter()
        if port:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    return time.monotonic() - start
            except (OSError, http.client.HTTPException):
                pass
        time.sleep(0.01)
    raise TimeoutError("/ping never answered 200")


def start_container(image: str, model_dir: str, env: dict[str, str]):
    import docker

    client = docker.from_env()
    t0 = time.monotonic()
    c = client.containers.run(image, "serve", detach=True, environment=env,
                              ports={"8080/tcp": ("127.0.0.1", None)},
                              volumes={model_dir: {"bind": "/opt/ml/model", "mode": "ro"}})

    def port() -> int:
        c.reload()
        b = (c.attrs["NetworkSettings"]["Ports"] or {}).get("8080/tcp")
        return int(b[0]["HostPort"]) if b else 0

    ready = wait_ready(port) + 0  # measured from after the run call returned
    return c, port(), time.monotonic() - t0, ready


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="byoc:serve-dev")
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--base-channels", type=int, default=16, help="U-Net width when no --model-dir is given")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=64, help="requests per (type, concurrency) level")
    ap.add_argument("--ceiling-seconds", type=float, default=8.0)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the serving container")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved ceiling/served rounds for the ratio")
    ap.add_argument("--ceiling-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--layouts", default="all", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.ceiling_only:  # inside the container
        print(json.dumps(ceiling(str(args.model_dir), args.size, args.ceiling_seconds, args.layouts)))
        return

    model_dir = args.model_dir
    if model_dir is None:
        sys.path.insert(0, str(REPO))
        from model.artifact import save_model_dir
        from model.normals.config import UNetConfig
        from model.normals.family import SurfaceNormals

        model_dir = Path(tempfile.mkdtemp(prefix="bench-model-"))
        # base 16, depth 4: the ~1.9 M-parameter U-Net measured on a 2-core CPU at 33 images/s (256 x 256,
        # 2 processes x 1 thread, jit + channels_last), the layout the serving defaults follow.
        fam, cfg = SurfaceNormals(), UNetConfig(base_channels=args.base_channels, depth=4)
        save_model_dir(model_dir, fam, cfg, fam.build(cfg), fam.preprocessing(cfg, args.size))
    model_dir = model_dir.resolve()
    env = dict(kv.split("=", 1) for kv in args.env)
    levels = [int(c) for c in args.concurrency.split(",")]

    import docker

    client = docker.from_env()
    size_mb = client.images.get(args.image).attrs["Size"] / 1e6
    print(f"image {args.image}: {size_mb:.0f} MB; model {model_dir}; cpus {len(os.sched_getaffinity(0))}")

    def run_ceiling(layouts: str) -> list[dict]:
        out = subprocess.run(
            ["docker", "run", "--rm", "-v", f"{model_dir}:/opt/ml/model:ro", "-v", f"{REPO / 'bench'}:/bench:ro",
             args.image, "python", "/bench/serve_bench.py", "--ceiling-only", "--model-dir", "/opt/ml/model",
             "--size", str(args.size), "--ceiling-seconds", str(args.ceiling_seconds), "--layouts", layouts],
            check=True, capture_output=True, text=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    colds = []
    for _ in range(args.cold_runs):
        c, _, total, _ = start_container(args.image, str(model_dir), env)
        colds.append(total)
        c.remove(force=True)
    print(f"\ncold start (docker run -> first 200 /ping): median {statistics.median(colds):.2f} s "
          f"of {[round(x, 2) for x in colds]}")

    c, port, _, _ = start_container(args.image, str(model_dir), env)
    try:
        rows = run_ceiling("all")  # the serving container sits idle meanwhile
        print("\nin-process ceiling (inside the image, predictor only):")
        for r in rows:
            print(f"  {r['processes']} proc x {r['threads']} thread(s), batch {r['batch']}: "
                  f"{r['images_per_s']} images/s")
        best = max(rows, key=lambda r: r["images_per_s"])
        best_layout = f"{best['processes']}x{best['threads']}x{best['batch']}"

        results = {}
        print(f"\nserved ({args.size}x{args.size}, Accept npy, {args.requests} requests per level):")
        for kind in ("png", "npy"):
            body, ctype = _body(kind, args.size)
            load(port, body, ctype, 2, 8)  # warm connections and workers
            for conc in levels:
                r = load(port, body, ctype, conc, max(args.requests, 2 * conc))
                results[(kind, conc)] = r
                print(f"  {kind} c={conc:>2}: {r['req_per_s']:6.2f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                      f"p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}")
        body, ctype = _body("npy", args.size)
        top = max(levels)
        busy = threading.Event()
        busy.set()
        pings: list[float] = []
        pinger = threading.Thread(target=lambda: pings.extend(ping_while(port, busy)))
        loader = threading.Thread(target=lambda: results.__setitem__("sat", load(port, body, ctype, top,
                                                                                 max(args.requests, 4 * top))))
        loader.start()
        time.sleep(1.0)  # let the load saturate the workers before sampling /ping
        pinger.start()
        loader.join()
        busy.clear()
        pinger.join()
        pings.sort()
        p99 = 1000 * pings[min(len(pings) - 1, int(0.99 * len(pings)))]
        print(f"\n/ping while c={top} saturates the workers: p50 {1000 * statistics.median(pings):.1f} ms, "
              f"p99 {p99:.1f} ms, max {1000 * pings[-1]:.1f} ms ({len(pings)} pings)")

        # Interleaved rounds: the machine's background load drifts, so compare medians of alternating runs.
        ceilings = [best["images_per_s"]]
        served = [results[("npy", top)]["req_per_s"], results["sat"]["req_per_s"]]
        for _ in range(args.rounds - 1):
            # Every layout again: under a drifting background load the best layout can change.
            ceilings.append(max(r["images_per_s"] for r in run_ceiling("all")))
            served.append(load(port, body, ctype, top, max(args.requests, 2 * top))["req_per_s"])
        ceiling_med, served_med = statistics.median(ceilings), statistics.median(served)
        print(f"\nceiling (best layout of each round; round 1: {best_layout} procs x threads x batch): "
              f"{ceilings} images/s, median {ceiling_med}")
        print(f"served npy c={top}: {served} req/s, median {served_med:.2f}")
        print(f"served/ceiling at c={top}: {served_med / ceiling_med:.3f}")
    finally:
        c.remove(force=True)


if __name__ == "__main__":
    main()
