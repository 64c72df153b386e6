"""What a finished job leaves for people: the model, metrics.json, validation panels, a training curve."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.artifact import atomic_write_bytes, save_model_dir
from model.family import MetricAccumulator
from train.baseline import write_baseline
from train.curve import draw_training_curve

if TYPE_CHECKING:
    from model.runtime import Runtime
    from train.job import TrainJob

log = logging.getLogger(__name__)


def constant_baseline(job: TrainJob, reference: MetricAccumulator, device: torch.device) -> dict[str, float]:
    """The metrics of the family's constant answer on the whole validation set (summed over ranks)."""
    state = job.dist.all_reduce_sum(reference.state().to(device)).cpu()
    reference.load_state(state)
    return reference.compute()


def write_outputs(job: TrainJob, weights: nn.Module, summary: dict[str, Any], history: list[dict[str, float]],
                  panels: list) -> None:
    save_model_dir(job.paths.model_dir, job.family, job.arch, weights,
                   job.family.preprocessing(job.arch, job.config.image_size), summary)
    out = job.paths.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    report = {**summary, "history": history}
    atomic_write_bytes(out / "metrics.json", (json.dumps(report, indent=2) + "\n").encode())
    for i, picture in enumerate(panels):
        Image.fromarray(np.asarray(picture, dtype=np.uint8)).save(out / f"panel_{i:02d}.png")
    metric = job.family.spec.objective_metric
    baseline = summary.get("constant_baseline", {}).get(metric.split(":", 1)[-1])
    curve = draw_training_curve(history, metric, baseline)
    if curve is not None:
        curve.save(out / "training_curve.png")
    log.info("model saved to %s; metrics, %d panels and the training curve in %s", job.paths.model_dir,
             len(panels), out)


def publish(job: TrainJob, weights: nn.Module, runtime: Runtime, summary: dict[str, Any],
            history: list[dict[str, float]], panels: list, splits: Any) -> None:
    """Everything a finished job leaves (rank 0 only): the model directory with its drift baseline beside the
    weights (monitoring), metrics.json, panels and the training curve."""
    write_outputs(job, weights, summary, history, panels)
    write_baseline(job, weights, runtime, splits)
