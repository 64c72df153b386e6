"""Soak benchmark (prints figures; not a test): the real container under mixed valid and invalid traffic.

    python bench/soak.py --image byoc:issue10 [--minutes 10] [--concurrency 16] [--model-dir DIR]

For --minutes, --concurrency client threads send a fixed, seeded mix: valid PNG/npy/JSON/JSON Lines requests
of several sizes and answer types, and invalid ones (garbage, truncated files, bombs, unacceptable Accept,
answers over the real-time limit). Every 10 s it samples each worker's RSS from /proc inside the container.
At the end it prints the status counts, the 5xx and connection-error counts, the RSS samples and the RSS
slope (least squares over the samples after the first minute, MiB per minute, per worker). Targets: flat
RSS, 0 5xx, 0 worker restarts. Without --model-dir it serves an untrained U-Net of --base-channels.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.container.hostile import corpus  # noqa: E402
from tests.container.serve_harness import start, workers  # noqa: E402
from tests.integration.serve_support import make_tiny_model_dir, npy_bytes, png_bytes, random_image  # noqa: E402


def request_mix(max_side: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """The requests the clients cycle through: about two valid for each invalid one."""
    valid = []
    for side in (32, 128, 256):
        img = random_image(side, side, side)
        valid += [
            (f"png {side} -> png", png_bytes(img), {"Content-Type": "image/png", "Accept": "image/png"}),
            (f"npy {side} -> npy16", npy_bytes(img), {"Content-Type": "application/x-npy",
                                                     "Accept": "application/x-npy; dtype=float16"}),
            (f"json {side}", json.dumps({"instances": [base64.b64encode(png_bytes(img)).decode()]}).encode(),
             {"Content-Type": "application/json", "Accept": "image/png"}),
        ]
    lines = "".join(json.dumps(random_image(16, 16, i).tolist()) + "\n" for i in range(40))
    valid.append(("jsonlines 40", lines.encode(), {"Content-Type": "application/jsonlines"}))
    valid.append(("npy batch 8", npy_bytes(np.stack([random_image(64, 64, i) for i in range(8)])),
                  {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}))
    invalid = [r for r in corpus(max_side) if len(r[1]) < 2_000_000][::4]
    return valid * max(1, (2 * len(invalid)) // len(valid)) + invalid


def slope_mib_per_min(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return float("nan")
    t = np.array([s[0] for s in samples]) / 60.0
    rss = np.array([s[1] for s in samples]) / 1024.0  # KiB -> MiB
    return float(np.polyfit(t, rss, 1)[0])


def report(statuses: collections.Counter[str], pings_failed: int, first: dict, last: dict,
           samples: dict[int, list[tuple[float, int]]]) -> None:
    print("\n==> statuses:", dict(sorted(statuses.items())))
    print(f"==> 5xx: {sum(n for k, n in statuses.items() if k.startswith('5'))}; connection errors: "
          f"{sum(n for k, n in statuses.items() if k.startswith('conn'))}; failed pings: {pings_failed}; "
          f"workers replaced: {len(set(first) - set(last))}")
    for pid, s in sorted(samples.items()):
        steady = [x for x in s if x[0] >= 60] or s
        print(f"==> worker {pid}: rss {s[0][1] // 1024} -> {s[-1][1] // 1024} MiB, peak "
              f"{last.get(pid, (0, 0))[1] // 1024} MiB, slope after 1 min {slope_mib_per_min(steady):+.2f} MiB/min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="byoc:test")
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-side", type=int, default=512, help="SERVE_MAX_IMAGE_PIXELS = max-side**2")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the serving container")
    args = ap.parse_args()

    model_dir = args.model_dir or make_tiny_model_dir(Path(tempfile.mkdtemp(prefix="soak-model-")), image_size=256,
                                                      base_channels=args.base_channels, depth=4)
    env = {"SERVE_MAX_IMAGE_PIXELS": str(args.max_side**2), **dict(e.split("=", 1) for e in args.env)}
    served = start(args.image, model_dir, env)
    mix = request_mix(args.max_side)
    statuses: collections.Counter[str] = collections.Counter()
    lock, stop = threading.Lock(), threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            _, body, headers = mix[int(rng.integers(len(mix)))]
            try:
                key = str(served.request("POST", "/invocations", body, headers, timeout=70)[0])
            except OSError as exc:
                key = f"conn:{type(exc).__name__}"
            with lock:
                statuses[key] += 1

    try:
        first = workers(served)
        print(f"==> {args.image}: {len(first)} workers {sorted(first)}, {len(mix)} request kinds, "
              f"concurrency {args.concurrency}, {args.minutes:g} min", flush=True)
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.concurrency)]
        for t in threads:
            t.start()
        samples: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
        pings_failed = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(min(10.0, max(0.0, args.minutes * 60 - (time.monotonic() - t0))))
            now = time.monotonic() - t0
            pings_failed += served.ping(timeout=2.0) != 200
            for pid, (rss, _) in workers(served).items():
                samples[pid].append((now, rss))
            with lock:
                done = sum(statuses.values())
            print(f"t={now:6.0f}s requests={done} rss_mib=" + ",".join(
                f"{pid}:{s[-1][1] // 1024}" for pid, s in sorted(samples.items())), flush=True)
        stop.set()
        for t in threads:
            t.join(75)
        report(statuses, pings_failed, first, workers(served), samples)
    finally:
        stop.set()
        served.stop()


if __name__ == "__main__":
    main()
