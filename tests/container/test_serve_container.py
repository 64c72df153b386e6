"""The real image serving over real HTTP on loopback: readiness, every content type, limits, load, SIGTERM.

Uses the shared ``image`` and ``trained_model_dir`` fixtures (tests/container/conftest.py; set BYOC_IMAGE
to reuse a built image).
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.container.serve_harness import start, wait_for_exit, wait_for_ping
from tests.integration.serve_support import load_npy, npy_bytes, png_bytes, random_image
from tests.polling import wait_until

pytestmark = pytest.mark.container


@pytest.fixture(scope="session")
def serve_image(image) -> str:
    return image


@pytest.fixture(scope="session")
def serve_model_dir(trained_model_dir) -> Path:
    """The output of the image's real `train` (tiny model), served as SageMaker would mount it."""
    return Path(trained_model_dir)


@pytest.fixture(scope="module")
def served(serve_image, serve_model_dir):
    s = start(serve_image, serve_model_dir, {"SAGEMAKER_BATCH": "True", "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD"})
    yield s
    s.stop()


IMG = random_image(48, 40, seed=7)


def test_ping_is_200_with_an_empty_body(served):
    status, _, body = served.request("GET", "/ping")
    assert (status, body) == (200, b"")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (png_bytes(IMG), "image/png"),
        (npy_bytes(IMG), "application/x-npy"),
        (json.dumps({"instances": [base64.b64encode(png_bytes(IMG)).decode()]}).encode(), "application/json"),
        (json.dumps(IMG.tolist()).encode() + b"\n", "application/jsonlines"),
    ],
)
@pytest.mark.parametrize("accept", ["image/png", "application/x-npy", "application/json", "application/jsonlines"])
def test_every_content_type_in_and_out(served, body, content_type, accept):
    status, headers, data = served.request("POST", "/invocations", body, {"Content-Type": content_type,
                                                                          "Accept": accept})
    assert status == 200, data[:300]
    assert headers["content-type"].startswith(accept)
    if accept == "image/png":
        from PIL import Image

        assert np.asarray(Image.open(io.BytesIO(data))).shape == (48, 40, 3)
    elif accept == "application/x-npy":
        arr = load_npy(data)
        assert arr.shape[-3:] == (48, 40, 3)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=-1), 1.0, atol=1e-3)
    elif accept == "application/json":
        doc = json.loads(data)
        assert (doc["predictions"][0] if "predictions" in doc else doc)["shape"] == [48, 40, 3]
    else:
        assert len(data.decode().splitlines()) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"x", {"Content-Type": "text/csv"}, 415),
        (png_bytes(IMG), {"Content-Type": "image/png", "Accept": "text/html"}, 406),
        (b"garbage", {"Content-Type": "image/png"}, 400),
        (npy_bytes(np.full((4, 4, 3), np.inf, np.float32)), {"Content-Type": "application/x-npy"}, 400),
    ],
)
def test_error_statuses_over_http(served, body, headers, status):
    got, resp_headers, data = served.request("POST", "/invocations", body, headers)
    assert got == status
    assert resp_headers["content-type"] == "application/json"
    assert json.loads(data)["message"]


def test_execution_parameters_for_batch_transform(served):
    status, _, data = served.request("GET", "/execution-parameters")
    assert status == 200
    doc = json.loads(data)
    assert doc["BatchStrategy"] == "MultiRecord"
    assert doc["MaxPayloadInMB"] == 6
    assert doc["MaxConcurrentTransforms"] >= 1


def test_metrics_merge_all_workers(served):
    for _ in range(4):
        served.request("POST", "/invocations", png_bytes(IMG), {"Content-Type": "image/png"})
    status, _, data = served.request("GET", "/metrics")
    assert status == 200
    text = data.decode()
    lines = [ln for ln in text.splitlines() if ln.startswith('serve_requests_total{route="/invocations",status="200"')]
    assert lines and float(lines[0].split()[-1]) >= 4
    assert "serve_batch_size_bucket" in text


def test_body_over_the_payload_limit_is_413_and_under_it_is_served(serve_image, serve_model_dir):
    s = start(serve_image, serve_model_dir, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"})
    try:
        near = npy_bytes(random_image(580, 600))  # 1,044,128 bytes: just under 1 MiB
        assert len(near) < 1024 * 1024
        assert s.request("POST", "/invocations", near, {"Content-Type": "application/x-npy",
                                                        "Accept": "application/x-npy"})[0] == 200
        over = b"\x93NUMPY" + b"\x00" * (1024 * 1024)
        assert s.request("POST", "/invocations", over, {"Content-Type": "application/x-npy"})[0] == 413
        assert s.ping() == 200
    finally:
        s.stop()


def test_default_payload_limit_is_6_mb(served):
    body = npy_bytes(random_image(1440, 1440))  # 6,220,928 bytes: under 6 MiB (6,291,456)
    status, _, _ = served.request("POST", "/invocations", body, {"Content-Type": "application/x-npy",
                                                               "Accept": "application/x-npy"})
    assert status == 200
    status, _, _ = served.request("POST", "/invocations", b"\x00" * (6 * 1024 * 1024 + 1),
                                  {"Content-Type": "application/x-npy"})
    assert status == 413


def test_unloadable_model_exits_non_zero_with_a_clear_log(serve_image, tmp_path):
    s = start(serve_image, tmp_path, wait_ready=False)
    try:
        assert wait_for_exit(s, 60) != 0
        assert "model directory" in s.logs() and "lacks" in s.logs()
    finally:
        s.stop()


def test_corrupt_weights_exit_non_zero_and_never_ping_200(serve_image, serve_model_dir, tmp_path):
    for name in ("model.json",):
        (tmp_path / name).write_bytes((serve_model_dir / name).read_bytes())
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    s = start(serve_image, tmp_path, wait_ready=False)
    try:
        pings = []
        end = time.monotonic() + 60
        while time.monotonic() < end:
            s.container.reload()
            if s.container.status == "exited":
                break
            pings.append(s.ping(timeout=1.0))
            time.sleep(0.05)
        assert 200 not in pings
        assert wait_for_exit(s, 30) != 0
        assert "cannot load the model" in s.logs()
    finally:
        s.stop()


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def test_ping_stays_fast_while_inference_saturates_every_worker(serve_image, default_unet_dir):
    s = start(serve_image, default_unet_dir)
    body = npy_bytes(random_image(256, 256))
    stop = threading.Event()
    done = []

    def load() -> None:
        for _ in range(40):  # bounded
            if stop.is_set():
                return
            status, _, _ = s.request("POST", "/invocations", body, {"Content-Type": "application/x-npy",
                                                                   "Accept": "application/x-npy"})
            done.append(status)

    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(load)
            # Saturated: every worker has been busy for a while.
            wait_until(lambda: len(done) >= 4, 120, "four requests answered under load", interval=0.02)
            latencies = []
            for _ in range(60):
                t = time.perf_counter()
                assert s.ping(timeout=2.0) == 200
                latencies.append(time.perf_counter() - t)
                time.sleep(0.02)
            stop.set()
        assert set(done) == {200}
        # SageMaker's limit is 2 s; the benchmark holds the stricter 20 ms target on a quiet machine.
        assert _percentile(latencies, 0.99) < 0.5, latencies
        assert statistics.median(latencies) < 0.1, latencies
    finally:
        stop.set()
        s.stop()


def test_sigterm_finishes_in_flight_requests_then_exits_within_30_s(serve_image, default_unet_dir):
    # At debug level gunicorn logs "POST /invocations" once it has parsed a request's headers: from then on the
    # request is in flight, and a graceful stop must finish it.
    s = start(serve_image, default_unet_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SERVE_LOG_LEVEL": "debug"})
    body = npy_bytes(random_image(512, 512))
    results = []

    def call() -> None:
        results.append(s.request("POST", "/invocations", body, {"Content-Type": "application/x-npy",
                                                               "Accept": "application/x-npy"})[0])

    try:
        workers = [threading.Thread(target=call) for _ in range(2)]
        for w in workers:
            w.start()
        wait_until(lambda: s.logs().count("POST /invocations") >= 2, 60, "both requests reaching the server",
                   interval=0.05)
        t = time.monotonic()
        s.container.kill(signal="SIGTERM")
        code = wait_for_exit(s, 35)
        elapsed = time.monotonic() - t
        for w in workers:
            w.join(10)
        assert results == [200, 200]
        assert code == 0, s.logs()
        assert elapsed < 30
    finally:
        s.stop()


def test_fuzzed_requests_never_get_a_5xx_and_the_server_stays_healthy(served):
    rng = random.Random(99)
    seeds = [png_bytes(IMG), npy_bytes(IMG), b'{"instances": [[[[0, 0, 0]]]]}']
    types = ["image/png", "image/jpeg", "application/x-npy", "application/json", "application/jsonlines",
             "application/json; charset=x", "a/b; c", "", "*/*"]
    for _ in range(150):  # bounded
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            if body and rng.random() < 0.6:
                body[rng.randrange(len(body))] = rng.randrange(256)
            else:
                del body[rng.randrange(len(body) + 1):]
        headers = {"Content-Type": rng.choice(types), "Accept": rng.choice(types),
                   "X-Amzn-SageMaker-Custom-Attributes": rng.choice(["a=b", "x" * 2000, ""]),
                   "X-Unknown-" + str(rng.randrange(100)): "v"}
        status, _, data = served.request("POST", "/invocations", bytes(body), headers)
        assert status < 500, data[:300]
    # Broken HTTP on a raw socket: the server must shrug it off.
    for junk in (b"GARBAGE\r\n\r\n", b"POST /invocations HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nx",
                 b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"\x00\xff" * 100):
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.settimeout(5)
            try:
                reply = sock.recv(64)
            except (TimeoutError, ConnectionResetError):
                reply = b""
            assert not reply.startswith(b"HTTP/1.1 5"), reply
    wait_for_ping(served, 10)
    assert served.ping() == 200
