"""`monitor` (container/monitor.py) in-process: capture files and image folders to a drift report."""

from __future__ import annotations

import base64
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from container import monitor
from model import drift
from model.normals.synthetic import render_scene
from tests.capture_support import capture_line, write_capture
from tests.integration.serve_support import npy_bytes, png_bytes


def _scenes(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_scene(rng, 48)[0] for _ in range(count)]


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / drift.BASELINE_FILE
    path.write_text(drift.Baseline(drift.aggregate(drift.summarize_image(im) for im in _scenes(0, 60))).to_json())
    return path


def _capture(folder, images, *, shift=lambda im: im):
    lines = []
    for i, im in enumerate(images):
        im = shift(im)
        if i % 3 == 0:
            lines.append(capture_line(png_bytes(im), "image/png"))
        elif i % 3 == 1:
            lines.append(capture_line(npy_bytes(im), "application/x-npy"))
        else:
            body = json.dumps({"instances": [base64.b64encode(png_bytes(im)).decode()]}).encode()
            lines.append(capture_line(body, "application/json"))
    write_capture(folder, lines)
    return folder


def _run(tmp_path, input_dir, baseline, *extra):
    out = tmp_path / "out"
    code = monitor.main(["--input", str(input_dir), "--baseline", str(baseline), "--output", str(out), *extra])
    return code, out


def test_capture_of_held_out_scenes_reports_no_drift_and_darkened_ones_do(tmp_path, baseline_file, capsys):
    held = _scenes(1, 24)
    code, out = _run(tmp_path / "a", _capture(tmp_path / "held", held), baseline_file)
    assert code == 0
    report = json.loads((out / monitor.REPORT_JSON).read_text())
    assert report["images"] == report["records"] == 24 and report["skipped"] == 0
    assert report["time_range"] == ["2026-12-03T16:00:00Z", "2026-12-03T16:00:00Z"]
    assert report["score"] < drift.ALERT_SET and not report["drifted"]
    assert set(report["psi"]) == set(drift.INPUT_HISTOGRAMS)
    assert Image.open(out / monitor.REPORT_PNG).size[0] > 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["drifted"] is False

    dark = _capture(tmp_path / "dark", held, shift=lambda im: (im * 0.5).astype(np.uint8))
    code, out = _run(tmp_path / "b", dark, baseline_file, "--fail-on-drift")
    report = json.loads((out / monitor.REPORT_JSON).read_text())
    assert code == 4 and report["drifted"] and report["score"] > 4 * drift.ALERT_SET
    assert max(report["psi"], key=report["psi"].get) in ("brightness", "red", "green", "blue")


def test_a_folder_of_images_and_a_model_tarball_work_too(tmp_path, baseline_file):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(_scenes(2, 5)):
        Image.fromarray(im).save(folder / f"{i}.jpg")
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(baseline_file, arcname=drift.BASELINE_FILE)
    code, out = _run(tmp_path, folder, tarball)
    assert code == 0 and json.loads((out / monitor.REPORT_JSON).read_text())["images"] == 5


def test_undecodable_records_are_skipped_and_listed(tmp_path, baseline_file):
    lines = [capture_line(png_bytes(_scenes(3, 1)[0]), "image/png"), "{not json",
             capture_line(b"\x00\x01", "application/octet-stream")]
    write_capture(tmp_path / "cap", lines)
    code, out = _run(tmp_path, tmp_path / "cap", baseline_file)
    report = json.loads((out / monitor.REPORT_JSON).read_text())
    assert code == 0 and report["images"] == 1 and report["skipped"] == 2
    assert ":2" in report["skipped_examples"][0]["source"]
    assert "octet-stream" in report["skipped_examples"][1]["reason"]


def test_no_baseline_or_no_images_exit_2_with_a_fix(tmp_path, baseline_file, capsys):
    (tmp_path / "empty").mkdir()
    code, _ = _run(tmp_path, tmp_path / "empty", tmp_path / "empty")
    assert code == 2 and "fix: pass --baseline" in capsys.readouterr().err
    code, _ = _run(tmp_path, tmp_path / "empty", baseline_file)
    assert code == 2 and "no decodable image" in capsys.readouterr().err


def test_capture_bodies_decode_like_the_server_accepts_them() -> None:
    from container.capture import decode_body

    im = _scenes(4, 1)[0]
    batch = np.stack([im, im]).astype(np.float32) / 255
    assert len(decode_body(npy_bytes(batch.transpose(0, 3, 1, 2)), "application/x-npy")) == 2
    lines = b"\n".join(json.dumps({"b64": base64.b64encode(png_bytes(im)).decode()}).encode() for _ in range(3))
    assert len(decode_body(lines, "application/jsonlines; charset=utf-8")) == 3
    nested = json.dumps({"instances": [im[:4, :4].tolist()]}).encode()
    assert decode_body(nested, "application/json")[0].shape == (4, 4, 3)
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format="JPEG")
    assert decode_body(buf.getvalue(), "image/jpeg")[0].shape == im.shape


def _facing(h: int, w: int, z: float) -> np.ndarray:
    """Unit normals tilted so their z component is ``z`` everywhere."""
    return np.dstack([np.full((h, w), np.sqrt(1 - z * z)), np.zeros((h, w)), np.full((h, w), z)])


def test_captured_answers_are_compared_with_the_validation_predictions(tmp_path):
    scenes = _scenes(5, 6)
    baseline = drift.Baseline(drift.aggregate(drift.summarize_image(im) for im in _scenes(0, 30)),
                              drift.aggregate(drift.summarize_normals(_facing(8, 8, 0.95)) for _ in range(4)))
    (tmp_path / drift.BASELINE_FILE).write_text(baseline.to_json())

    def answers(z: float, folder: str) -> dict:
        lines = []
        for i, im in enumerate(scenes):
            pred = _facing(*im.shape[:2], z)
            if i % 2:
                answer, kind = json.dumps({"shape": list(pred.shape), "normals": pred.tolist()}).encode(), \
                    "application/json"
            else:
                answer, kind = npy_bytes(pred.astype(np.float32)), "application/x-npy"
            lines.append(capture_line(png_bytes(im), "image/png", answer, kind))
        write_capture(tmp_path / folder, lines)
        code, out = _run(tmp_path / f"out-{folder}", tmp_path / folder, tmp_path / drift.BASELINE_FILE)
        assert code == 0
        return json.loads((out / monitor.REPORT_JSON).read_text())["predictions"]

    same, tilted = answers(0.95, "same"), answers(0.1, "tilted")
    assert same["count"] == tilted["count"] == 6
    assert same["score"] < 0.01 and tilted["score"] > 5
