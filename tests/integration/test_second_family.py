"""The seam, proved end to end in-process: the grey family (tests/tinygrey, a different network, data format,
metrics and answer) is trained and served through the unchanged plumbing, everything read from its spec."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from container.aws import launch, tune
from model.artifact import load_model_dir
from serve.predictor import Predictor
from serve.settings import ServeSettings
from tests.integration.serve_support import jpeg_bytes, load_npy, npy_bytes, png_bytes, random_image, serve_app
from tests.integration.test_training import make_job
from tests.tinygrey.family import TinyGrey, write_tiny_dataset
from tests.tinygrey.spec import SPEC
from train.errors import UserError
from train.loop import run

FAMILY = "tests.tinygrey.family:TinyGrey"
HPS = {"model_family": FAMILY, "hidden": "3", "epochs": "2", "batch_size": "2", "image_size": "16",
       "data_workers": "0", "panels": "1", "validation_fraction": "0.34"}
IMG = random_image(5, 7, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model directory, everything the training printed)."""
    tmp = tmp_path_factory.mktemp("grey")
    write_tiny_dataset(tmp / "train", count=6)
    write_tiny_dataset(tmp / "test", count=2)
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        run(make_job(tmp, HPS, {"train": tmp / "train", "test": tmp / "test"}))
    return tmp / "model", capture.getvalue()


@pytest.fixture(scope="module")
def predictor(trained):
    return Predictor.from_model_dir(trained[0], device="cpu", cpu_threads=1)


@pytest.fixture(scope="module")
def client(predictor):
    return serve_app(predictor, ServeSettings(max_image_pixels=64 * 64, max_images=4, workers=1)).test_client()


def post(client, body, content_type, accept):
    return client.post("/invocations", data=body, headers={"Content-Type": content_type, "Accept": accept})


def test_its_metric_lines_are_its_own_and_its_generated_definitions_read_every_one(trained):
    lines = [line for line in trained[1].splitlines() if line.startswith("#metric ")]
    printed = {re.match(r"#metric epoch=\d+ (\S+)=", line).group(1) for line in lines}
    assert {"validation:mse", "validation:mae", "test:mse", "test:mae", "train:loss"} <= printed
    assert not any("angular" in name for name in printed)
    definitions = launch.metric_definitions(FAMILY)
    assert [d["Name"] for d in definitions] == SPEC.metric_names()
    for name in printed:  # every line the job printed reaches CloudWatch under its own name only
        line = next(line for line in lines if f" {name}=" in line)
        assert [d["Name"] for d in definitions if re.search(d["Regex"], line)] == [name]


def test_the_laptop_clis_read_its_spec(trained):
    assert tune.default_objective(FAMILY, None, None) == ("validation:mse", "Minimize")
    assert launch.validate_hyperparameters({"model_family": FAMILY, "hidden": 5})["hidden"] == "5"
    with pytest.raises(UserError, match="hidden") as info:
        launch.validate_hyperparameters({"model_family": FAMILY, "base_channels": "8"})
    assert "base_channels" in info.value.what


def test_the_model_directory_names_the_family(trained):
    meta = json.loads((trained[0] / "model.json").read_text())
    assert meta["family"] == FAMILY
    assert isinstance(load_model_dir(trained[0]).family, TinyGrey)


@pytest.mark.parametrize(("body", "content_type"), [
    (png_bytes(IMG), "image/png"), (jpeg_bytes(IMG), "image/jpeg"), (npy_bytes(IMG), "application/x-npy"),
    (json.dumps({"instances": [base64.b64encode(png_bytes(IMG)).decode()]}).encode(), "application/json"),
    (json.dumps(IMG.tolist()).encode() + b"\n", "application/jsonlines"),
])
def test_every_content_type_answers_with_its_output_name(client, predictor, body, content_type):
    r = post(client, body, content_type, "application/json")
    assert r.status_code == 200, r.data
    doc = r.get_json()
    record = doc["predictions"][0] if "predictions" in doc else doc
    assert sorted(record) == ["grey", "shape"] and record["shape"] == [5, 7, 1]
    if content_type != "image/jpeg":  # JPEG is lossy: the model saw other pixels
        expected = np.clip(predictor.predict([IMG])[0], 0.0, 1.0)
        np.testing.assert_allclose(np.array(record["grey"]), expected, atol=1e-4)


def test_every_answer_type_carries_one_channel(client, predictor):
    prediction = predictor.predict([IMG])[0]
    npy = load_npy(post(client, png_bytes(IMG), "image/png", "application/x-npy").data)
    assert npy.shape == (5, 7, 1)
    np.testing.assert_allclose(npy, prediction, atol=1e-6)
    picture = np.array(Image.open(io.BytesIO(post(client, png_bytes(IMG), "image/png", "image/png").data)))
    np.testing.assert_array_equal(picture, predictor.family.to_image(prediction))
    lines = post(client, json.dumps(IMG.tolist()).encode() + b"\n" + json.dumps(IMG.tolist()).encode() + b"\n",
                 "application/jsonlines", "application/jsonlines").data.decode().splitlines()
    assert [sorted(json.loads(line)) for line in lines] == [["grey", "shape"]] * 2
