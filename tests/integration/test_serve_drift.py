"""Per-request drift in the Flask app: access-log fields and /metrics, with and without a baseline."""

from __future__ import annotations

import base64
import json
import logging
import shutil

import numpy as np
import pytest

from model import drift
from model.normals.synthetic import render_scene
from serve.predictor import Predictor
from serve.settings import ServeSettings
from tests.integration.serve_support import make_tiny_model_dir, png_bytes, serve_app


def _scenes(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_scene(rng, 48)[0] for _ in range(count)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = make_tiny_model_dir(tmp_path_factory.mktemp("model"))
    predictor = Predictor.from_model_dir(path, device="cpu", cpu_threads=1)
    train = _scenes(0, 40)
    predictions = predictor.predict(train[:8])
    baseline = drift.Baseline(drift.aggregate(drift.summarize_image(im) for im in train),
                              drift.aggregate(drift.summarize_normals(p) for p in predictions))
    (path / drift.BASELINE_FILE).write_text(baseline.to_json())
    return path


def _app(model_dir):
    predictor = Predictor.from_model_dir(model_dir, device="cpu", cpu_threads=1)
    return serve_app(predictor, ServeSettings(model_dir=model_dir)).test_client()


def _access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "serve.access"]


def test_each_prediction_logs_its_drift_and_a_darkened_image_scores_higher(model_dir, caplog):
    client = _app(model_dir)
    scene = _scenes(1, 1)[0]
    caplog.set_level(logging.INFO, logger="serve.access")
    for image in (scene, (scene * 0.4).astype(np.uint8)):
        r = client.post("/invocations", data=png_bytes(image), headers={"Content-Type": "image/png"})
        assert r.status_code == 200
    same, dark = _access_lines(caplog)
    assert same["image_pixels"] == dark["image_pixels"] == 48 * 48
    assert dark["input_drift"] > 2 * same["input_drift"] > 0
    assert {"prediction_drift"} <= same.keys()

    text = client.get("/metrics").get_data(as_text=True)
    assert "serve_input_drift_count 2.0" in text
    assert "serve_prediction_drift_count 2.0" in text


def test_a_batch_logs_the_largest_image_and_its_worst_score(model_dir, caplog):
    client = _app(model_dir)
    scenes = _scenes(2, 2)
    caplog.set_level(logging.INFO, logger="serve.access")
    body = "\n".join(json.dumps({"b64": base64.b64encode(png_bytes(im)).decode()})
                     for im in (scenes[0], np.full((60, 50, 3), 255, np.uint8)))
    r = client.post("/invocations", data=body, headers={"Content-Type": "application/jsonlines"})
    assert r.status_code == 200
    (line,) = _access_lines(caplog)
    assert line["image_pixels"] == 60 * 50
    assert line["input_drift"] > 5  # an all-white image is far from every scene


def test_without_a_baseline_there_is_no_score_and_no_error(model_dir, tmp_path, caplog):
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    (bare / drift.BASELINE_FILE).unlink()
    client = _app(bare)
    caplog.set_level(logging.INFO, logger="serve.access")
    r = client.post("/invocations", data=png_bytes(_scenes(3, 1)[0]), headers={"Content-Type": "image/png"})
    assert r.status_code == 200
    (line,) = _access_lines(caplog)
    assert line["image_pixels"] == 48 * 48 and "input_drift" not in line
    assert "serve_input_drift_count 0.0" in client.get("/metrics").get_data(as_text=True)


def test_an_unreadable_baseline_is_a_warning_not_a_failure(model_dir, tmp_path, caplog):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / drift.BASELINE_FILE).write_text('{"format_version": 99}')
    caplog.set_level(logging.INFO)
    client = _app(broken)
    assert "serving without drift scores" in caplog.text and "format_version 99" in caplog.text
    r = client.post("/invocations", data=png_bytes(_scenes(3, 1)[0]), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and "input_drift" not in _access_lines(caplog)[0]
