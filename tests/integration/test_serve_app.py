"""The Flask app through its test client: every content type in and out, every error status, readiness."""

from __future__ import annotations

import base64
import io
import json
import random

import numpy as np
import pytest
from PIL import Image

from serve.app import create_app
from serve.batching import make_batcher
from serve.predictor import Predictor
from serve.settings import ServeSettings
from tests.integration.serve_support import (
    jpeg_bytes,
    load_npy,
    make_tiny_model_dir,
    npy_bytes,
    png_bytes,
    random_image,
    serve_app,
)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    model_dir = make_tiny_model_dir(tmp_path_factory.mktemp("model"))
    p = Predictor.from_model_dir(model_dir, device="cpu", cpu_threads=1)
    p.warm_up()
    return p


@pytest.fixture(scope="module")
def settings():
    return ServeSettings(max_image_pixels=128 * 128, max_images=8, max_payload_bytes=512 * 1024, workers=2)


@pytest.fixture(scope="module")
def client(predictor, settings):
    return serve_app(predictor, settings).test_client()


def post(client, body, content_type, accept=None, **headers):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {}), **headers}
    return client.post("/invocations", data=body, headers=headers)


IMG = random_image(20, 30)


def test_ping_is_200_with_an_empty_body_when_ready(client):
    r = client.get("/ping")
    assert r.status_code == 200
    assert r.data == b""


def test_a_worker_app_is_ready_from_its_first_request_and_answers_503_once_its_batcher_stops(predictor, settings):
    # A worker builds its app only after loading and warming the model (a failed load stops the worker), so
    # /ping has nothing to wait for; shutting down is the one state in which the app cannot predict.
    batcher = make_batcher(predictor, settings).start()
    client = create_app(predictor, batcher, settings).test_client()
    assert client.get("/ping").status_code == 200
    batcher.close()
    r = post(client, png_bytes(IMG), "image/png")
    assert r.status_code == 503
    assert "shutting down" in r.get_json()["message"]


def test_png_in_png_out_is_a_standard_rgb_normal_map(client, predictor):
    r = post(client, png_bytes(IMG), "image/png", "image/png")
    assert r.status_code == 200
    assert r.content_type == "image/png"
    out = np.asarray(Image.open(io.BytesIO(r.data)))
    assert out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, predictor.family.to_image(predictor.predict([IMG])[0]))


def test_jpeg_in_json_out_has_normals_and_shape(client):
    r = post(client, jpeg_bytes(IMG), "image/jpeg", "application/json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["shape"] == [20, 30, 3]
    normals = np.asarray(doc["normals"])
    assert normals.shape == (20, 30, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-3)


def test_npy_in_npy_out_float32_by_default_and_float16_on_request(client, predictor):
    r = post(client, npy_bytes(IMG), "application/x-npy", "application/x-npy")
    arr = load_npy(r.data)
    assert (arr.shape, arr.dtype) == ((20, 30, 3), np.float32)
    np.testing.assert_allclose(arr, predictor.predict([IMG])[0], atol=1e-5)
    r = post(client, npy_bytes(IMG), "application/x-npy", "application/x-npy; dtype=float16")
    assert load_npy(r.data).dtype == np.float16


def test_npy_batch_in_batch_out_same_count_and_order(client, predictor):
    batch = np.stack([random_image(16, 16, seed=s) for s in range(5)])
    r = post(client, npy_bytes(batch), "application/x-npy", "application/x-npy")
    out = load_npy(r.data)
    assert out.shape == (5, 16, 16, 3)
    for i in range(5):
        np.testing.assert_allclose(out[i], predictor.predict([batch[i]])[0], atol=1e-5)


def test_channels_first_float_batch_is_accepted(client):
    batch = np.stack([random_image(16, 16, seed=s) for s in range(2)]).transpose(0, 3, 1, 2) / 255.0
    r = post(client, npy_bytes(batch.astype(np.float32)), "application/x-npy", "application/x-npy")
    assert load_npy(r.data).shape == (2, 16, 16, 3)


def test_json_instances_of_different_sizes_keep_order(client, predictor):
    images = [random_image(16, 16, 1), random_image(24, 8, 2), random_image(16, 16, 3)]
    doc = {"instances": [base64.b64encode(png_bytes(images[0])).decode(), images[1].tolist(),
                         {"b64": base64.b64encode(png_bytes(images[2])).decode()}]}
    r = post(client, json.dumps(doc), "application/json; charset=utf-8")
    assert r.status_code == 200
    preds = r.get_json()["predictions"]
    assert [p["shape"] for p in preds] == [[16, 16, 3], [24, 8, 3], [16, 16, 3]]
    for p, img in zip(preds, images, strict=True):
        np.testing.assert_allclose(p["normals"], predictor.predict([img])[0], atol=2e-4)


def test_jsonlines_in_defaults_to_jsonlines_out_one_line_per_record(client):
    lines = [json.dumps(base64.b64encode(png_bytes(random_image(8, 8, s))).decode()) for s in range(3)]
    r = post(client, "\n".join(lines) + "\n", "application/jsonlines")
    assert r.status_code == 200
    assert r.content_type == "application/jsonlines"
    out = r.data.decode().splitlines()
    assert len(out) == 3
    assert all(json.loads(line)["shape"] == [8, 8, 3] for line in out)


def test_wildcard_and_missing_accept_use_the_default(client):
    for accept in (None, "*/*", "application/*"):
        assert post(client, png_bytes(IMG), "image/png", accept).content_type == "application/json"


def test_default_accept_is_configurable(predictor):
    client = serve_app(predictor, ServeSettings(default_accept="image/png")).test_client()
    assert post(client, png_bytes(IMG), "image/png", "*/*").content_type == "image/png"


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        (b"a,b,c", "text/csv", None, 415),
        (b"x", "", None, 415),
        (png_bytes(IMG), "image/png", "text/html", 406),
        (npy_bytes(np.stack([IMG, IMG])), "application/x-npy", "image/png", 406),
        (b"not a png", "image/png", None, 400),
        (b"", "image/png", None, 400),
        (npy_bytes(np.zeros((4, 4), np.uint8)), "application/x-npy", None, 400),
        (npy_bytes(np.full((4, 4, 3), np.nan, np.float32)), "application/x-npy", None, 400),
        (npy_bytes(np.zeros((200, 200, 3), np.uint8)), "application/x-npy", None, 400),
        (npy_bytes(np.zeros((9, 4, 4, 3), np.uint8)), "application/x-npy", None, 400),
        (b'{"instances": "nope"}', "application/json", None, 400),
        (b"\x00" * (512 * 1024 + 1), "application/x-npy", None, 413),
    ],
)
def test_client_errors_map_to_their_status_with_a_reason(client, body, content_type, accept, status):
    r = post(client, body, content_type, accept)
    assert r.status_code == status
    doc = r.get_json()
    assert doc["message"]
    assert "Traceback" not in doc["message"]


def test_unknown_routes_and_methods(client):
    assert client.get("/nope").status_code == 404
    assert client.get("/invocations").status_code == 405


def test_model_failure_is_500_without_a_traceback(settings, predictor, monkeypatch, caplog):
    def broken(_batch):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor, "forward", broken)
    r = post(serve_app(predictor, settings).test_client(), png_bytes(IMG), "image/png")
    assert r.status_code == 500
    assert "secret" not in r.get_data(as_text=True)
    assert "secret internal detail" in caplog.text


def test_custom_attributes_are_echoed_and_unknown_headers_ignored(client):
    r = post(client, png_bytes(IMG), "image/png", "image/png",
             **{"X-Amzn-SageMaker-Custom-Attributes": "trace=abc;v=2", "X-Whatever": "1"})
    assert r.status_code == 200
    assert r.headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=abc;v=2"
    assert r.headers["X-Request-Id"]


def test_execution_parameters_use_the_spelling_local_mode_accepts(client):
    doc = client.get("/execution-parameters").get_json()
    assert doc == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MultiRecord", "MaxPayloadInMB": 1}


def test_execution_parameters_follow_the_batch_environment(predictor):
    s = ServeSettings(batch_strategy="SingleRecord", max_payload_bytes=20 * 1024 * 1024, max_concurrent_transforms=8)
    doc = serve_app(predictor, s).test_client().get("/execution-parameters").get_json()
    assert doc == {"MaxConcurrentTransforms": 5, "BatchStrategy": "SingleRecord", "MaxPayloadInMB": 20}


def test_metrics_count_requests_latency_and_batch_sizes(predictor, settings):
    client = serve_app(predictor, settings).test_client()
    post(client, png_bytes(IMG), "image/png")
    post(client, b"x", "text/csv")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'serve_requests_total{route="/invocations",status="200"} 1.0' in text
    assert 'serve_requests_total{route="/invocations",status="415"} 1.0' in text
    assert "serve_request_seconds_bucket" in text
    assert "serve_batch_size_count 1.0" in text


def test_one_structured_log_line_per_request(client, caplog):
    caplog.set_level("INFO", logger="serve.access")
    post(client, png_bytes(IMG), "image/png", **{"X-Amzn-SageMaker-Inference-Id": "req-42"})
    records = [json.loads(r.message) for r in caplog.records if r.name == "serve.access"]
    assert len(records) == 1
    rec = records[0]
    assert rec["request_id"] == "req-42"
    assert rec["status"] == 200
    assert rec["content_type"] == "image/png"
    assert rec["bytes_in"] > 0
    assert rec["latency_ms"] > 0


def test_fuzzed_bodies_and_headers_never_give_a_5xx(client):
    rng = random.Random(1234)
    seeds = [png_bytes(IMG), npy_bytes(IMG), b'{"instances": [[[[0, 0, 0]]]]}', b"[[1,2,3]]\n"]
    types = ["image/png", "image/jpeg", "application/x-npy", "application/json", "application/jsonlines",
             "application/json; charset=latin-1", "image/png; x=\"", ";;", "*/*", "application/x-npy; dtype=x"]
    for _ in range(300):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 8)):
            op = rng.random()
            if op < 0.4 and body:
                body[rng.randrange(len(body))] = rng.randrange(256)
            elif op < 0.7:
                del body[rng.randrange(len(body) + 1):]
            else:
                body[rng.randrange(len(body) + 1):0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        r = post(client, bytes(body), rng.choice(types), rng.choice([None, *types, "image/*;q=abc", ","]))
        assert r.status_code < 500, (r.status_code, r.data[:200])
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize("shape", [(1, 1), (1, 100), (100, 1), (17, 33)])
def test_tiny_and_odd_sizes_come_back_at_their_own_size(client, shape):
    r = post(client, npy_bytes(random_image(*shape)), "application/x-npy", "application/x-npy")
    assert r.status_code == 200
    assert load_npy(r.data).shape == (*shape, 3)
