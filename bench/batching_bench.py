"""Served images/s through one worker's batcher, in process, with and without dynamic batching.

    python -m bench.batching_bench [--model-dir DIR] [--size 256] [--concurrency 16] [--seconds 8]
        [--rounds 3] [--batch 1 --batch 8 --batch 16] [--delay-ms 5] [--device cuda|cpu]

A worker's serving path without HTTP: ``--concurrency`` request threads each turn a uint8 image into a tensor
(``Predictor.prepare``), submit it to a ``serve.batching.Batcher`` around ``Predictor.forward`` and turn the
answer back into a float32 array (``Predictor.finish``), in a closed loop, as a worker's request threads do.
Each ``--batch`` size gets a fresh batcher (size 1 runs with no delay: that is serving unbatched); sizes are
interleaved within each round. Prints, per size, images/s, p50/p99 latency, the mean pass size and the GPU busy
share (CUDA with NVML only), medians over rounds, and images/s relative to unbatched. Without ``--model-dir`` an
untrained U-Net of ``--base-channels`` is served (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from bench.gpu_busy import BusySampler, fmt_share
from bench.serve_load import percentile
from serve.batching import Batcher
from serve.predictor import Predictor


def run_one(predictor: Predictor, images: list[np.ndarray], batch: int, delay_s: float, concurrency: int,
            seconds: float) -> dict[str, float | None]:
    """Closed-loop clients on a fresh batcher for ``seconds`` after a short warm-up."""
    passes: list[int] = []
    batcher = Batcher(predictor.forward, max_batch_size=batch, max_delay_s=delay_s if batch > 1 else 0.0,
                      on_batch=passes.append).start()
    latencies: list[float] = []
    lock = threading.Lock()
    measuring, stop = threading.Event(), threading.Event()

    def client(i: int) -> None:
        image = images[i % len(images)]
        while not stop.is_set():
            start = time.perf_counter()
            out = batcher.submit([predictor.prepare(image)], timeout=60)[0]
            predictor.finish(out, image.shape)
            if measuring.is_set():
                with lock:
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(min(2.0, seconds / 4))  # warm-up: cuDNN picks its kernels per batch shape
    with BusySampler() as busy:
        passes.clear()
        measuring.set()
        start = time.perf_counter()
        time.sleep(seconds)
        measuring.clear()
        elapsed = time.perf_counter() - start
        with lock:
            done = list(latencies)
        counted = list(passes)
    stop.set()
    for t in threads:
        t.join()
    batcher.close()
    return {"images_s": len(done) / elapsed, "p50_ms": percentile(done, 0.5) * 1000,
            "p99_ms": percentile(done, 0.99) * 1000,
            "mean_pass": statistics.mean(counted) if counted else float("nan"), "busy": busy.share}


def make_model(base_channels: int, size: int) -> Path:
    from model.artifact import save_model_dir
    from model.normals.config import UNetConfig
    from model.normals.family import SurfaceNormals

    model_dir = Path(tempfile.mkdtemp(prefix="batching-bench-"))
    fam, cfg = SurfaceNormals(), UNetConfig(base_channels=base_channels, depth=4)
    save_model_dir(model_dir, fam, cfg, fam.build(cfg), fam.preprocessing(cfg, size))
    return model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--base-channels", type=int, default=16, help="U-Net width when no --model-dir is given")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, action="append", default=[], help="max batch size (repeatable)")
    ap.add_argument("--delay-ms", type=float, default=5.0, help="longest wait for a batch to fill (batch > 1)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda where available)")
    args = ap.parse_args()
    sizes = args.batch or [1, 8, 16]
    model_dir = args.model_dir or make_model(args.base_channels, args.size)
    predictor = Predictor.from_model_dir(model_dir, device=args.device)
    predictor.warm_up(batch_sizes=sorted(set(sizes)))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(8)]
    print(f"{predictor.describe()}; torch {torch.__version__}; {args.size}x{args.size} images; "
          f"concurrency {args.concurrency}; {args.seconds:g} s x {args.rounds} rounds, sizes interleaved")
    runs: dict[int, list[dict]] = {b: [] for b in sizes}
    for r in range(args.rounds):
        for b in sizes:
            m = run_one(predictor, images, b, args.delay_ms / 1000, args.concurrency, args.seconds)
            runs[b].append(m)
            print(f"round {r + 1} batch<={b}: {m['images_s']:.1f} images/s, p50 {m['p50_ms']:.1f} ms, "
                  f"p99 {m['p99_ms']:.1f} ms, mean pass {m['mean_pass']:.2f}, GPU busy {fmt_share(m['busy'])}",
                  flush=True)
    base = statistics.median(m["images_s"] for m in runs[sizes[0]])
    print(f"medians (ratio to batch<={sizes[0]}):")
    for b, ms in runs.items():
        rate = statistics.median(m["images_s"] for m in ms)
        busy = [m["busy"] for m in ms if m["busy"] is not None]
        print(f"  batch<={b:<3} {rate:8.1f} images/s ({rate / base:.2f}x)  p99 "
              f"{statistics.median(m['p99_ms'] for m in ms):7.1f} ms  mean pass "
              f"{statistics.median(m['mean_pass'] for m in ms):5.2f}  GPU busy "
              f"{fmt_share(statistics.median(busy) if busy else None)}")


if __name__ == "__main__":
    main()
