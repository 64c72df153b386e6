"""Issue 10 through the Flask client: answer size, request pixels, batch transform at any record count,
slices streamed behind an exact Content-Length, and memory flat in the number of records."""

from __future__ import annotations

import base64
import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from serve.metrics import ServeMetrics
from serve.predictor import Predictor
from serve.settings import ServeSettings, settings_from_env
from tests.integration.serve_support import load_npy, make_tiny_model_dir, npy_bytes, png_bytes, random_image, serve_app


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    p = Predictor.from_model_dir(make_tiny_model_dir(tmp_path_factory.mktemp("model")), device="cpu", cpu_threads=1)
    p.warm_up()
    return p


REALTIME = ServeSettings(max_image_pixels=128 * 128, max_response_bytes=20_000, workers=1)
BATCH = replace(settings_from_env({"SAGEMAKER_BATCH": "true"}), max_image_pixels=128 * 128, workers=1)


def post(client, body, content_type, accept=None):
    return client.post("/invocations", data=body,
                       headers={"Content-Type": content_type, **({"Accept": accept} if accept else {})})


def test_an_answer_over_the_realtime_limit_is_a_400_naming_size_and_fix_before_any_inference(predictor):
    metrics = ServeMetrics()
    client = serve_app(predictor, REALTIME, metrics).test_client()
    r = post(client, png_bytes(random_image(64, 64)), "image/png", "application/json")
    assert r.status_code == 400
    doc = r.get_json()
    assert doc["error"] == "ResponseTooLarge"
    assert "106" in doc["message"] and "SERVE_MAX_RESPONSE_MB" in doc["message"]  # 106,526 bytes of JSON
    assert "image/png" in doc["message"] and "dtype=float16" in doc["message"]
    assert metrics.registry.get_sample_value("serve_images_total") == 0  # refused before the model ran
    assert post(client, png_bytes(random_image(64, 64)), "image/png", "image/png").status_code == 200


def test_batch_transform_keeps_full_answers():
    assert BATCH.max_response_bytes is None


def test_batch_transform_answers_a_500_record_minibatch_in_full_and_in_order(predictor):
    client = serve_app(predictor, BATCH).test_client()
    sizes = [(4 + i % 7, 3 + i % 5) for i in range(500)]
    body = "".join(json.dumps(base64.b64encode(png_bytes(random_image(h, w, i))).decode()) + "\n"
                   for i, (h, w) in enumerate(sizes)).encode()
    r = post(client, body, "application/jsonlines")
    assert r.status_code == 200, r.data[:300]
    lines = r.data.decode().splitlines()
    assert [tuple(json.loads(line)["shape"][:2]) for line in lines] == sizes


def _values(data: bytes, accept: str) -> np.ndarray:
    if accept == "application/x-npy":
        return load_npy(data)
    if accept == "application/json":
        return np.array([p["normals"] for p in json.loads(data)["predictions"]])
    return np.array([json.loads(line)["normals"] for line in data.decode().splitlines()])


def test_a_batch_over_many_slices_streams_the_same_answer_with_an_exact_length(predictor):
    images = np.stack([random_image(16, 16, i) for i in range(40)])
    whole = serve_app(predictor, BATCH).test_client()
    sliced = serve_app(predictor, replace(BATCH, worker_max_pixels=4 * 256)).test_client()  # 1 image a slice
    for accept in ("application/json", "application/x-npy", "application/jsonlines"):
        a = post(whole, npy_bytes(images), "application/x-npy", accept)
        b = sliced.post("/invocations", data=npy_bytes(images), buffered=False,
                        headers={"Content-Type": "application/x-npy", "Accept": accept})
        streamed = b"".join(b.response)
        assert a.status_code == b.status_code == 200
        assert b.is_streamed and int(b.headers["Content-Length"]) == len(streamed)
        # Same records in the same order; the whole batch shares forward passes, so floats differ in the last bits.
        expected, got = _values(a.data, accept), _values(streamed, accept)
        assert got.shape == expected.shape == (40, 16, 16, 3)
        np.testing.assert_allclose(got, expected, atol=2e-4)


def _peak_while_serving(client, body: bytes) -> int:
    tracemalloc.start()
    try:
        r = client.post("/invocations", data=body, buffered=False,
                        headers={"Content-Type": "application/x-npy", "Accept": "application/json"})
        sent = sum(len(chunk) for chunk in r.response)  # consumed like a socket would: chunk by chunk
        assert r.status_code == 200 and sent == int(r.headers["Content-Length"])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_number_of_records(predictor):
    client = serve_app(predictor, replace(BATCH, worker_max_pixels=16 * 64 * 64)).test_client()
    small, large = (npy_bytes(np.stack([random_image(64, 64, i) for i in range(n)])) for n in (40, 320))
    peak_small, peak_large = _peak_while_serving(client, small), _peak_while_serving(client, large)
    # The body is held twice (the test client's copy, the server's buffer); beyond that, 8x the records (and
    # an 8x larger answer: 34 MB of JSON) costs no more than 40 records, since one slice is held at once.
    assert peak_large < 2 * len(large) + peak_small, (peak_small, peak_large, len(large))


def test_request_pixel_total_is_a_400_naming_the_setting(predictor):
    client = serve_app(predictor, replace(REALTIME, max_request_pixels=3 * 32 * 32)).test_client()
    r = post(client, npy_bytes(np.stack([random_image(32, 32, i) for i in range(4)])), "application/x-npy", "image/png")
    assert r.status_code == 400
    assert "SERVE_MAX_REQUEST_PIXELS" in r.get_json()["message"]


def test_a_png_default_accept_answers_a_batch_with_json_instead_of_406(predictor):
    client = serve_app(predictor, replace(REALTIME, default_accept="image/png", max_response_bytes=None)).test_client()
    batch = npy_bytes(np.stack([random_image(8, 8, i) for i in range(2)]))
    for accept in (None, "*/*"):
        r = post(client, batch, "application/x-npy", accept)
        assert r.status_code == 200
        assert r.content_type == "application/json"
    assert post(client, png_bytes(random_image(8, 8)), "image/png", "*/*").content_type == "image/png"


def test_concurrent_requests_wait_for_the_worker_budget_rather_than_fail(predictor):
    settings = replace(BATCH, max_image_pixels=64 * 64, worker_max_pixels=64 * 64)  # room for one image at a time
    app = serve_app(predictor, settings)
    body = png_bytes(random_image(64, 64))

    def call(_: int) -> int:
        return post(app.test_client(), body, "image/png", "application/x-npy").status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(call, range(16))) == [200] * 16


def test_the_body_is_read_from_a_stream_that_only_has_read():
    from serve.body import read_body

    class ReadOnly:  # gunicorn's request body: read(n), no readinto
        def __init__(self, data: bytes) -> None:
            self.data, self.pos = data, 0

        def read(self, n: int) -> bytes:
            chunk, self.pos = self.data[self.pos:self.pos + n], self.pos + n
            return chunk

    body = bytes(range(256)) * 10_000
    assert bytes(read_body(ReadOnly(body), len(body), 10 << 20)) == body
