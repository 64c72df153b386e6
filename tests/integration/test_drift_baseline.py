"""`train` leaves drift_baseline.json beside the weights: the raw training inputs and the validation predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import drift
from model.normals.synthetic import write_dataset
from tests.integration.test_training import TINY, make_job
from tests.tinygrey.family import write_tiny_dataset
from train.loop import run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    write_dataset(root / "train", count=10, size=40, seed=1)
    write_dataset(root / "validation", count=3, size=48, seed=2)
    return root


def test_the_baseline_summarises_every_raw_training_image_and_the_validation_predictions(tmp_path, scenes):
    from serve.predictor import Predictor

    run(make_job(tmp_path, TINY, {"train": scenes / "train", "validation": scenes / "validation"}))

    baseline = drift.Baseline.from_json((tmp_path / "model" / drift.BASELINE_FILE).read_text())
    raw = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((scenes / "train" / "images").iterdir())]
    expected = drift.aggregate(drift.summarize_image(im) for im in raw)
    assert baseline.inputs.count == 10
    for name in drift.INPUT_HISTOGRAMS:  # the files as a client sends them, not the 32 px training crops
        np.testing.assert_allclose(baseline.inputs.distribution(name), expected.distribution(name), atol=1e-6)
    assert baseline.inputs.scalar_stats()["height"]["mean"] == 40
    assert baseline.predictions is not None and baseline.predictions.count == 3
    assert baseline.predictions.distribution("normal_z").sum() == pytest.approx(1.0)
    # ...and they are the predictions the served model makes of those images
    predictor = Predictor.from_model_dir(tmp_path / "model", device="cpu", precision="fp32")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((scenes / "validation" / "images").iterdir())]
    served = drift.aggregate(drift.summarize_normals(p) for p in predictor.predict(images))
    for name in served.sums:
        np.testing.assert_allclose(baseline.predictions.distribution(name), served.distribution(name), atol=1e-6)


def test_a_family_without_image_files_trains_without_a_baseline(tmp_path):
    write_tiny_dataset(tmp_path / "train")
    hps = {"model_family": "tests.tinygrey.family:TinyGrey", "hidden": "3", "epochs": "1",
           "batch_size": "2", "image_size": "16", "data_workers": "0", "panels": "0"}
    run(make_job(tmp_path, hps, {"train": tmp_path / "train"}))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "model.pt"]


def test_pipe_mode_records_are_read_through_their_image_member():
    from model.normals.family import SurfaceNormals
    from tests.integration.serve_support import png_bytes, random_image
    from train.baseline import raw_image
    from train.stream import Record

    image = random_image(12, 9)
    record = Record("scene-1", {"png": png_bytes(image), "normals.png": b"unused"})
    np.testing.assert_array_equal(raw_image(SurfaceNormals(), record), image)
    assert raw_image(SurfaceNormals(), Record("x", {"normals.png": b""})) is None


def _tiny_normals():
    from model.normals.config import UNetConfig
    from model.normals.family import SurfaceNormals
    from model.runtime import select_runtime

    family, arch = SurfaceNormals(), UNetConfig(base_channels=4, depth=2)
    network = family.build(arch)
    runtime = select_runtime("fp32", device="cpu").for_model(network, training=True)
    if runtime.channels_last:  # placed as the trainer places it
        network = network.to(memory_format=torch.channels_last)
    return family, network, runtime, family.preprocessing(arch, 32)


def test_a_validation_sample_without_a_readable_image_is_skipped_and_the_rest_still_predicted():
    from tests.integration.serve_support import png_bytes, random_image
    from train.baseline import build_baseline
    from train.stream import Record

    family, network, runtime, preprocessing = _tiny_normals()
    good = [Record(f"scene-{i}", {"png": png_bytes(random_image(16, 12))}) for i in range(2)]
    without_image = Record("labels-only", {"normals.png": b""})
    baseline = build_baseline(family, network, runtime, preprocessing, good, [without_image, *good])
    assert baseline is not None and baseline.predictions is not None
    assert baseline.predictions.count == 2

