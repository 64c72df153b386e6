"""What per-request drift costs: the input + prediction summaries and scores vs one forward pass.

    python -m bench.drift_bench [--size 256] [--repeats 20] [--base-channels 32]

Prints milliseconds per image (median of ``--repeats``) for the serving monitor's work (serve/drift.py:
input summary, prediction summary, both scores) and for the predictor alone, and their ratio. Runs the
untrained U-Net of the given width on the CPU (or the GPU when present) with the runtime's defaults.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from model import drift
from model.artifact import save_model_dir
from model.normals.config import UNetConfig
from model.normals.family import SurfaceNormals
from model.normals.synthetic import render_scene
from serve.drift import RequestMonitor
from serve.predictor import Predictor


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--base-channels", type=int, default=32)
    args = parser.parse_args(argv)
    family, config = SurfaceNormals(), UNetConfig(base_channels=args.base_channels)
    rng = np.random.default_rng(0)
    images = [render_scene(rng, args.size)[0] for _ in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        save_model_dir(Path(tmp), family, config, family.build(config), family.preprocessing(config, args.size))
        predictor = Predictor.from_model_dir(Path(tmp))
        predictor.warm_up()
        preds = predictor.predict(images[:4])
        baseline = drift.Baseline(drift.aggregate(drift.summarize_image(im) for im in images),
                                  drift.aggregate(drift.summarize_normals(p) for p in preds))
        monitor = RequestMonitor(baseline, CollectorRegistry())
        image, pred = images[0], preds[0]
        monitor.observe([image], [pred], family.summarize_prediction)
        summary_ms = _median_ms(lambda: drift.summarize_image(image), args.repeats)
        monitor_ms = _median_ms(lambda: monitor.observe([image], [pred], family.summarize_prediction), args.repeats)
        predict_ms = _median_ms(lambda: predictor.predict([image]), max(3, args.repeats // 4))
    print(f"{args.size}x{args.size} image, {predictor.describe()}")
    print(f"input summary        {summary_ms:8.2f} ms")
    print(f"monitor per request  {monitor_ms:8.2f} ms  (input + prediction summaries and scores)")
    print(f"prediction           {predict_ms:8.2f} ms")
    print(f"monitor / prediction {monitor_ms / predict_ms:8.3f}")


if __name__ == "__main__":
    main()
