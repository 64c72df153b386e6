"""Training must actually learn: far below the constant "facing the camera" answer, on unseen scene styles.

The validation scenes come from the generator's held-out style (other shapes, textures, lighting, noise,
field of view than the training scenes), so the test checks that what is learned generalises.
"""

from __future__ import annotations

import pytest

from model.normals.synthetic import write_dataset
from train.config import parse_hyperparameters
from train.job import TrainJob, TrainPaths, training_runtime
from train.loop import run

#: Measured on a 2-core CPU: the default recipe reaches 0.59-0.60x of the constant answer's error here in
#: ~10-14 s (float32 or bf16, with or without zoomed crops or 32-px windows: 10 fixed epochs, so the recipe's
#: gain per minute does not show) (the previous default, base 32 without coordinates, angular loss or weight
#: average: 0.62x in 38 s; the previous test asserted 0.9x and measured 0.80x with validation in the training style).
RATIO_BOUND = 0.68


@pytest.mark.slow
def test_validation_error_on_another_scene_style_drops_far_below_the_constant_answer(tmp_path):
    write_dataset(tmp_path / "train", count=192, size=48, seed=11)
    write_dataset(tmp_path / "validation", count=32, size=48, seed=12, style="heldout")
    hps = {"epochs": "10", "max_minutes": "0", "image_size": "48", "checkpoint_steps": "0", "panels": "0",
           "log_every_steps": "100"}
    config, family, arch = parse_hyperparameters(hps)
    channels = {"train": tmp_path / "train", "validation": tmp_path / "validation"}
    job = TrainJob(config, family, arch, TrainPaths(channels, tmp_path / "m", tmp_path / "d", tmp_path / "c"),
                   training_runtime(config))
    summary = run(job)
    learned = summary["final_metrics"]["validation:mean_angular_error"]
    baseline = summary["constant_baseline"]["mean_angular_error"]
    print(f"validation mean angular error: model {learned:.2f} deg, constant answer {baseline:.2f} deg")
    assert learned < RATIO_BOUND * baseline
