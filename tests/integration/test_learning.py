"""Training must actually learn: beat the constant "facing the camera" prediction on held-out data."""

from __future__ import annotations

import pytest
import torch

from model.normals.synthetic import write_dataset
from model.runtime import select_runtime
from train.config import parse_hyperparameters
from train.loop import TrainJob, TrainPaths, run


def constant_baseline(family, samples, image_size: int) -> float:
    dataset = family.dataset(samples, image_size=image_size, augment=False, seed=0)
    metrics = family.metrics()
    for i in range(len(dataset)):
        batch = {k: v[None] for k, v in dataset[i].items()}
        facing = torch.zeros_like(batch["normals"])
        facing[:, 2] = 1.0
        metrics.update(facing, batch)
    return metrics.compute()["mean_angular_error"]


@pytest.mark.slow
def test_validation_error_drops_well_below_the_facing_camera_baseline(tmp_path):
    write_dataset(tmp_path / "train", count=320, size=32, seed=11)
    write_dataset(tmp_path / "validation", count=32, size=32, seed=12)
    hps = {"epochs": "6", "batch_size": "16", "image_size": "32", "base_channels": "16", "data_workers": "0",
           "checkpoint_steps": "0", "panels": "0", "log_every_steps": "100"}
    config, family, arch = parse_hyperparameters(hps)
    channels = {"train": tmp_path / "train", "validation": tmp_path / "validation"}
    job = TrainJob(config, family, arch, TrainPaths(channels, tmp_path / "m", tmp_path / "d", tmp_path / "c"),
                   select_runtime(config.precision))
    learned = run(job)["final_metrics"]["validation:mean_angular_error"]
    baseline = constant_baseline(family, family.index(tmp_path / "validation"), 32)
    print(f"validation mean angular error: model {learned:.2f} deg, constant baseline {baseline:.2f} deg")
    assert learned < 0.9 * baseline
