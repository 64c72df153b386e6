"""Accuracy per wall-clock minute: train candidate recipes for a fixed budget, judge them on a held-out style.

    python -m bench.quality_bench [--recipes default,previous] [--minutes 10] [--train 256] [--val 64]
                                  [--size 128] [--train-style default] [--val-style heldout] [--data DIR]
                                  [--keep DIR]

Each recipe is a set of hyperparameters run through the real training loop in this process (files
decoded once, in memory), with ``max_minutes`` set to the budget. The budget is stated for a machine on
which the reference training step (``bench/reference_speed.py``) runs at 16 images/s and is scaled by
the speed measured right before each recipe, so runs on a busy or faster machine stay comparable.
Validation scenes come from another generator style than training (other shapes, textures, lighting,
noise, field of view: ``model/normals/synthetic.py``), so a recipe is judged on how it generalises; the
``test`` split holds unseen scenes of the training style. Printed beside every result: the constant
"facing the camera" answer on the same scenes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.reference_speed import REFERENCE_IMAGES_PER_SECOND, measure
from model.normals.family import SurfaceNormals
from model.normals.objective import cosine_loss
from model.normals.synthetic import write_dataset
from train.config import parse_hyperparameters
from train.job import TrainJob, TrainPaths, training_runtime
from train.loop import run

_QUIET = {"checkpoint_steps": "0", "keep_checkpoints": "1", "panels": "0", "log_every_steps": "1000000"}

#: Candidate recipes; "default" is the job with hyperparameters {}.
RECIPES: dict[str, dict[str, str]] = {
    "default": {},
    # What `{}` trained before: 7.2 M parameters, 1 - cos loss, no coordinates, no weight average, whole frames.
    "previous": {"base_channels": "32", "coord_channels": "false", "ema_decay": "0", "crop_fraction": "1",
                 "model_family": "bench.quality_bench:CosineLossNormals"},
    # The default in float32: what `{}` trains on CPUs without native bf16 (and did everywhere before).
    "fp32": {"precision": "fp32"},
    "no-coords": {"coord_channels": "false"},
    "cosine-loss": {"model_family": "bench.quality_bench:CosineLossNormals"},
    "ema": {"ema_decay": "0.995"},
    "ema-999": {"ema_decay": "0.999"},
    "no-augment": {"augment": "false"},
    "lr-2e-3": {"learning_rate": "0.002"},
    "lr-3e-3": {"learning_rate": "0.003"},
    "wd-1e-2": {"weight_decay": "0.01"},
    "batch-8": {"batch_size": "8"},
    "base-24": {"base_channels": "24"},
    "depth-5": {"depth": "5"},
    # Training windows of other sizes (validation always on whole frames); more epochs fit the budget.
    "whole-frames": {"crop_fraction": "1"},
    "crop-112": {"crop_fraction": "0.875"},  # 112 px of 128: the default before 96
}


class CosineLossNormals(SurfaceNormals):
    """The surface-normal family trained with 1 - cos instead of the angle (for comparison only)."""

    def loss(self, outputs, batch):
        return cosine_loss(outputs, batch["normals"], batch["valid"])


def make_data(root: Path, args) -> dict[str, Path]:
    plan = {"train": (args.train, 1, args.train_style), "validation": (args.val, 2, args.val_style),
            "test": (args.val, 3, args.train_style)}
    channels = {}
    for name, (count, seed, style) in plan.items():
        folder = root / f"{name}-{style}-{count}x{args.size}-seed{seed}"
        if not (folder / "masks").is_dir() or len(list((folder / "masks").iterdir())) != count:
            write_dataset(folder, count, args.size, seed=seed, style=style)
        channels[name] = folder
    return channels


def reference_speed() -> float:
    """Median of three short measurements: other work on a shared machine comes in bursts."""
    return statistics.median(measure(steps=6) for _ in range(3))


def run_recipe(name: str, channels: dict[str, Path], args, scratch: Path) -> dict:
    speed = args.reference or reference_speed()
    minutes = args.minutes * REFERENCE_IMAGES_PER_SECOND / speed
    hps = {**_QUIET, "max_minutes": f"{minutes:.3f}", "image_size": str(args.size), **RECIPES[name]}
    config, family, arch = parse_hyperparameters(hps)
    out = scratch / name
    job = TrainJob(config, family, arch, TrainPaths(channels, out / "model", out / "data", out / "ckpt"),
                   training_runtime(config))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the per-epoch #metric lines; the table says it all
        summary = run(job)
    report = json.loads((out / "data" / "metrics.json").read_text())
    return {"recipe": name, "reference_images_per_second": round(speed, 1), "budget_minutes": round(minutes, 2),
            "wall_minutes": round((time.perf_counter() - start) / 60, 2), "epochs": summary["epochs"],
            "parameters": sum(p.numel() for p in job.family.build(arch).parameters()),
            "final": summary["final_metrics"], "baseline": summary["constant_baseline"],
            "curve": [(h["elapsed_seconds"], h.get("validation:mean_angular_error")) for h in report["history"]]}


def print_result(r: dict) -> None:
    f, b = r["final"], r["baseline"]
    print(f"\n== {r['recipe']}: {r['parameters'] / 1e6:.2f} M parameters, {r['epochs']} epochs in "
          f"{r['wall_minutes']:.1f} min (budget {r['budget_minutes']:.1f} min at reference "
          f"{r['reference_images_per_second']:.1f} images/s)")
    print("   seconds  validation mean error (deg)")
    for seconds, err in r["curve"]:
        print(f"   {seconds:7.0f}  {err:6.2f}")
    print(f"   held-out style: mean {f['validation:mean_angular_error']:.2f} deg, median "
          f"{f['validation:median_angular_error']:.2f}, < 11.25 deg {100 * f['validation:within_11.25deg']:.1f}% "
          f"| constant answer: mean {b.get('mean_angular_error', float('nan')):.2f}, < 11.25 deg "
          f"{100 * b.get('within_11.25deg', float('nan')):.1f}%")
    print(f"   training style (unseen scenes): mean {f['test:mean_angular_error']:.2f} deg, "
          f"< 11.25 deg {100 * f['test:within_11.25deg']:.1f}%")
    print("RESULT " + json.dumps({k: v for k, v in r.items() if k != "curve"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="default,previous", help=f"comma-separated; known: {', '.join(RECIPES)}")
    parser.add_argument("--minutes", type=float, default=10.0, help="budget on a 16 images/s reference machine")
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--train-style", default="default")
    parser.add_argument("--val-style", default="heldout")
    parser.add_argument("--reference", type=float, help="take this reference speed (images/s) instead of measuring "
                        "it before each recipe: the same budget for every recipe of one session on one machine")
    parser.add_argument("--data", type=Path, help="keep generated scenes here between runs")
    parser.add_argument("--keep", type=Path, help="keep each recipe's model, panels and curve in DIR/<recipe>")
    args = parser.parse_args()
    names = [n for n in args.recipes.split(",") if n]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.train} {args.train_style} scenes "
          f"of {args.size} px, validation {args.val} {args.val_style} scenes; budget {args.minutes:g} min "
          f"at {REFERENCE_IMAGES_PER_SECOND:g} reference images/s")
    with tempfile.TemporaryDirectory() as tmp:
        channels = make_data(args.data or Path(tmp) / "data", args)
        for name in names:
            print_result(run_recipe(name, channels, args, args.keep or Path(tmp)))
    print(f"\nreference speed after the last recipe: {reference_speed():.1f} images/s")


if __name__ == "__main__":
    main()
