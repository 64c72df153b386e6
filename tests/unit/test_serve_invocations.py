"""``serve.invocations`` without HTTP: (body, Content-Type, Accept) -> (status, headers, body) for every content
type and Accept combination that matters, and the one error map."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from serve.batching import Batcher, make_batcher
from serve.errors import NotReady, status_for
from serve.invocations import Invocations, RequestLog, error_reply
from serve.metrics import ServeMetrics
from serve.predictor import Predictor
from serve.settings import ServeSettings
from tests.integration.serve_support import make_tiny_model_dir, npy_bytes, png_bytes, random_image

SETTINGS = ServeSettings(max_image_pixels=64 * 64, max_images=4, max_response_bytes=None)
IMG = random_image(8, 12)
PAIR = np.stack([random_image(8, 8, 1), random_image(8, 8, 2)])
JSON_PAIR = json.dumps({"instances": [base64.b64encode(png_bytes(random_image(8, 8, 1))).decode(),
                                      random_image(6, 4, 2).tolist()]}).encode()
JSONL_PAIR = b"".join(json.dumps(base64.b64encode(png_bytes(random_image(8, 8, s))).decode()).encode() + b"\n"
                      for s in range(2))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return Predictor.from_model_dir(make_tiny_model_dir(tmp_path_factory.mktemp("model")), device="cpu",
                                    cpu_threads=1)


@pytest.fixture(scope="module")
def invoke(predictor):
    batcher = make_batcher(predictor, SETTINGS).start()
    yield Invocations(predictor, batcher, SETTINGS, ServeMetrics())
    batcher.close()


def body_of(reply) -> bytes:
    return reply.body if isinstance(reply.body, bytes) else b"".join(reply.body)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "answer_type"),
    [
        # One image: JSON unless asked otherwise; wildcards and q-values pick among what we produce.
        (png_bytes(IMG), "image/png", None, "application/json"),
        (png_bytes(IMG), "image/png", "*/*", "application/json"),
        (png_bytes(IMG), "image/png", "application/*", "application/json"),
        (png_bytes(IMG), "image/png", "image/*", "image/png"),
        (png_bytes(IMG), "image/png", "image/png", "image/png"),
        (png_bytes(IMG), "image/png", "text/html, image/png;q=0.5", "image/png"),
        (png_bytes(IMG), "image/png", "application/json;q=0.2, application/x-npy", "application/x-npy"),
        (png_bytes(IMG), "image/png", "application/x-npy; dtype=float16", "application/x-npy; dtype=float16"),
        (png_bytes(IMG), "image/png", "application/jsonlines", "application/jsonlines"),
        (npy_bytes(IMG), "application/x-npy", None, "application/json"),
        (npy_bytes(IMG), "application/npy", "application/x-npy", "application/x-npy"),
        # A batch: PNG cannot hold it, so the next acceptable type answers.
        (npy_bytes(PAIR), "application/x-npy", None, "application/json"),
        (npy_bytes(PAIR), "application/x-npy", "image/png, application/x-npy;q=0.5", "application/x-npy"),
        (npy_bytes(PAIR), "application/x-npy", "image/*, */*;q=0.1", "application/json"),
        (JSON_PAIR, "application/json", None, "application/json"),
        (JSON_PAIR, "application/json; charset=utf-8", "application/jsonlines", "application/jsonlines"),
        # JSON lines in: JSON lines out by default (batch transform joins answers by line).
        (JSONL_PAIR, "application/jsonlines", None, "application/jsonlines"),
        (JSONL_PAIR, "application/x-ndjson", "*/*", "application/jsonlines"),
        (JSONL_PAIR, "application/jsonlines", "application/json", "application/json"),
    ],
)
def test_each_content_type_and_accept_answers_200_in_the_negotiated_type(invoke, body, content_type, accept,
                                                                          answer_type):
    reply = invoke(body, content_type, accept)
    data = body_of(reply)
    assert (reply.status, reply.headers["Content-Type"]) == (200, answer_type), data[:300]
    assert int(reply.headers["Content-Length"]) == len(data)
    assert reply.log.images >= 1 and reply.log.error is None


def test_a_png_answer_is_the_predicted_normal_map_as_an_image(invoke, predictor):
    reply = invoke(png_bytes(IMG), "image/png", "image/png")
    out = np.asarray(Image.open(io.BytesIO(body_of(reply))))
    np.testing.assert_array_equal(out, predictor.family.to_image(predictor.predict([IMG])[0]))


def test_a_configured_default_accept_answers_missing_and_wildcard_accepts_but_yields_to_a_batch(predictor):
    settings = replace(SETTINGS, default_accept="image/png")
    invoke = Invocations(predictor, make_batcher(predictor, settings).start(), settings, ServeMetrics())
    assert invoke(png_bytes(IMG), "image/png", None).headers["Content-Type"] == "image/png"
    assert invoke(png_bytes(IMG), "image/png", "*/*").headers["Content-Type"] == "image/png"
    assert invoke(png_bytes(IMG), "image/png", "application/json").headers["Content-Type"] == "application/json"
    assert invoke(npy_bytes(PAIR), "application/x-npy", None).headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "error"),
    [
        (b"a,b", "text/csv", None, 415, "UnsupportedMediaType"),
        (b"a,b", None, None, 415, "UnsupportedMediaType"),
        (b"not a png", "text/csv", "text/html", 415, "UnsupportedMediaType"),  # Content-Type is judged first
        (b"not a png", "image/png", "text/html", 406, "NotAcceptable"),  # then Accept, before the body
        (npy_bytes(PAIR), "application/x-npy", "image/png", 406, "NotAcceptable"),
        (npy_bytes(IMG), "application/x-npy", "application/x-npy; dtype=int8", 406, "NotAcceptable"),
        (b"not a png", "image/png", None, 400, "BadRequest"),
        (npy_bytes(np.zeros((65, 65, 3), np.uint8)), "application/x-npy", None, 400, "BadRequest"),
        (npy_bytes(np.zeros((5, 4, 4, 3), np.uint8)), "application/x-npy", None, 400, "BadRequest"),
        (b'{"instances": 3}', "application/json", None, 400, "BadRequest"),
    ],
)
def test_client_errors_are_json_with_their_status_and_a_reason(invoke, body, content_type, accept, status, error):
    reply = invoke(body, content_type, accept)
    doc = json.loads(body_of(reply))
    assert (reply.status, reply.headers["Content-Type"], doc["error"]) == (status, "application/json", error)
    assert doc["message"] and reply.log.error == doc["message"]


def test_an_answer_over_the_response_limit_is_a_400_and_the_access_line_still_counts_the_images(predictor):
    settings = replace(SETTINGS, max_response_bytes=1000)
    invoke = Invocations(predictor, make_batcher(predictor, settings).start(), settings, ServeMetrics())
    reply = invoke(npy_bytes(PAIR), "application/x-npy", "application/json")
    assert (reply.status, json.loads(body_of(reply))["error"]) == (400, "ResponseTooLarge")
    assert reply.log.images == 2


def test_a_model_failure_is_a_500_naming_the_request_id_never_the_cause(predictor, caplog):
    def broken(_batch):
        raise RuntimeError("secret internal detail")

    invoke = Invocations(predictor, Batcher(broken).start(), SETTINGS, ServeMetrics())
    reply = invoke(png_bytes(IMG), "image/png", None, request_id="req-7")
    doc = json.loads(body_of(reply))
    assert reply.status == 500
    assert "req-7" in doc["message"] and "secret" not in doc["message"]
    assert "secret internal detail" in caplog.text  # the traceback goes to the log


def test_a_prediction_past_the_deadline_is_a_503_and_a_stopped_batcher_too(predictor):
    gate = threading.Event()

    def slow(batch):
        gate.wait(5)
        return predictor.forward(batch)

    batcher = Batcher(slow).start()
    invoke = Invocations(predictor, batcher, SETTINGS, ServeMetrics())
    try:
        reply = invoke(png_bytes(IMG), "image/png", None, deadline=time.monotonic() + 0.05)
        assert (reply.status, json.loads(body_of(reply))["error"]) == (503, "Overloaded")
    finally:
        gate.set()
        batcher.close()
    reply = invoke(png_bytes(IMG), "image/png", None)
    assert (reply.status, json.loads(body_of(reply))["error"]) == (503, "NotReady")


def test_a_batch_of_several_slices_streams_behind_an_exact_content_length(predictor):
    settings = replace(SETTINGS, worker_max_pixels=4 * 64)  # slices of one 8 x 8 image
    invoke = Invocations(predictor, make_batcher(predictor, settings).start(), settings, ServeMetrics())
    reply = invoke(npy_bytes(PAIR), "application/x-npy", "application/x-npy")
    assert not isinstance(reply.body, bytes)
    data = body_of(reply)
    assert int(reply.headers["Content-Length"]) == len(data)
    assert np.load(io.BytesIO(data)).shape == (2, 8, 8, 3)


def test_the_error_map_keeps_the_client_message_and_the_request_log():
    request_log = RequestLog(images=3)
    reply = error_reply(NotReady("the server is shutting down"), "r", request_log)
    assert reply.status == status_for(NotReady("x")) == 503
    assert json.loads(reply.body) == {"error": "NotReady", "message": "the server is shutting down"}
    assert reply.log is request_log and request_log.error == "the server is shutting down"


def test_a_pipeline_whose_slices_could_not_fit_its_pixel_budget_is_refused_when_built(predictor):
    from serve.budget import PixelBudget
    from serve.pipeline import Pipeline

    batcher = Batcher(predictor.forward)
    for pixels in (0, 101):
        with pytest.raises(ValueError, match=r"slice_pixels=\d+ must be in 1\.\.100"):
            Pipeline(predictor, batcher, PixelBudget(100), slice_pixels=pixels, max_response_bytes=None)
