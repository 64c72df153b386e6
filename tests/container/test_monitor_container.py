"""Monitoring in the real image: train writes the baseline, serve logs a drift score per request, and
`docker run IMAGE monitor` turns capture files of real requests into a report (as a Processing job would)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import drift
from model.normals.synthetic import render_scene
from tests.capture_support import capture_line, write_capture
from tests.container.mltree import finish
from tests.container.serve_harness import start
from tests.integration.serve_support import png_bytes

pytestmark = pytest.mark.container


def test_train_wrote_a_baseline_of_its_inputs_and_validation_predictions(trained_model_dir):
    baseline = drift.Baseline.from_json((Path(trained_model_dir) / drift.BASELINE_FILE).read_text())
    assert baseline.inputs.count >= 10  # 12 scenes less the held-out validation share
    assert baseline.predictions is not None and baseline.predictions.count >= 1


def _requests(served, images) -> list[str]:
    """POST each image; the capture line SageMaker would write for the real request and answer."""
    lines = []
    for image in images:
        body = png_bytes(image)
        status, headers, answer = served.request("POST", "/invocations", body, {"Content-Type": "image/png",
                                                                                 "Accept": "application/json"})
        assert status == 200, answer[:300]
        lines.append(capture_line(body, "image/png", answer, headers["content-type"]))
    return lines


def _monitor(docker_client, image, capture: Path, model_dir: Path, out: Path) -> dict:
    out.mkdir(parents=True)
    container = docker_client.containers.run(
        image, "monitor", detach=True, network_disabled=True,
        volumes={str(capture): {"bind": "/opt/ml/processing/input/capture", "mode": "ro"},
                 str(model_dir): {"bind": "/opt/ml/processing/input/baseline", "mode": "ro"},
                 str(out): {"bind": "/opt/ml/processing/output", "mode": "rw"}})
    code, logs = finish(container, timeout=300)
    assert code == 0, logs
    assert (out / "drift_report.png").stat().st_size > 0
    return json.loads((out / "drift_report.json").read_text())


def test_served_requests_log_drift_and_monitor_scores_a_darkened_capture_higher(
        docker_client, image, trained_model_dir, tmp_path):
    rng = np.random.default_rng(99)
    scenes = [render_scene(rng, 40)[0] for _ in range(12)]  # the training channel's generator and size
    served = start(image, Path(trained_model_dir))
    try:
        held = _requests(served, scenes)
        dark = _requests(served, [(im * 0.4).astype(np.uint8) for im in scenes])
        metrics = served.request("GET", "/metrics")[2].decode()
        logs = served.logs()
    finally:
        served.stop()

    access = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and "input_drift" in line]
    assert len(access) == 24 and all(a["image_pixels"] == 40 * 40 for a in access)
    per_image = [a["input_drift"] for a in access]
    assert np.mean(per_image[12:]) > 2 * np.mean(per_image[:12])
    assert "serve_input_drift_count 24.0" in metrics

    write_capture(tmp_path / "held", held)
    write_capture(tmp_path / "dark", dark)
    held_report = _monitor(docker_client, image, tmp_path / "held", Path(trained_model_dir), tmp_path / "out-held")
    dark_report = _monitor(docker_client, image, tmp_path / "dark", Path(trained_model_dir), tmp_path / "out-dark")
    assert held_report["images"] == dark_report["images"] == 12 and held_report["skipped"] == 0
    assert dark_report["drifted"] and dark_report["score"] > 3 * held_report["score"]
