"""The Flask app: thin views over the predictor, an explicit readiness state, errors mapped in one place.

``create_app(model, settings)`` takes a ready ``Predictor`` (tests) or a ``ServingModel`` that a loader
fills in the background (gunicorn workers), so /ping can say 503 while loading and 200 once warm.
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from serve import codecs, decoding
from serve.batching import SMALL_BATCH_ELEMENTS, Batcher
from serve.budget import PixelBudget
from serve.drift import RequestMonitor
from serve.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    ServeError,
    status_for,
)
from serve.imagefiles import describe
from serve.metrics import ServeMetrics
from serve.pipeline import Answer, Pipeline
from serve.predictor import Predictor
from serve.settings import ServeSettings, SettingsError, batching_defaults

log = logging.getLogger(__name__)
access_log = logging.getLogger("serve.access")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
_ID_HEADERS = ("X-Amzn-SageMaker-Inference-Id", "X-Amzn-Trace-Id", "X-Request-Id")
_READ_CHUNK = 1 << 20
#: Over-limit bodies up to this size are read and discarded before answering 413, so clients that send
#: the whole body before reading (most HTTP clients) see the 413 instead of a broken pipe.
_MAX_DISCARD = 128 << 20


class Readiness(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class _Loaded:
    predictor: Predictor
    batcher: Batcher


class ServingModel:
    """Readiness plus, once ready, the predictor and its batcher. Written once by the loader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = Readiness.LOADING
        self._loaded: _Loaded | None = None
        self.reason = ""

    @property
    def state(self) -> Readiness:
        return self._state

    def set_ready(self, predictor: Predictor, batcher: Batcher) -> None:
        with self._lock:
            self._loaded = _Loaded(predictor, batcher)
            self._state = Readiness.READY

    def set_failed(self, reason: str) -> None:
        with self._lock:
            self._state, self.reason = Readiness.FAILED, reason

    def get(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            raise NotReady(f"the model is {self._state.value}; poll GET /ping until it answers 200")
        return loaded


def make_batcher(predictor: Predictor, settings: ServeSettings, metrics: ServeMetrics | None = None) -> Batcher:
    size, delay_ms = batching_defaults(predictor.device_type)
    return Batcher(
        predictor.forward,
        max_batch_size=settings.max_batch_size or size,
        max_delay_s=(settings.max_batch_delay_ms if settings.max_batch_delay_ms is not None else delay_ms) / 1000,
        on_batch=metrics.batch_size.observe if metrics else None,
        small_batch_elements=SMALL_BATCH_ELEMENTS,
    )


def _default_accept(settings: ServeSettings) -> codecs.MediaType | None:
    if settings.default_accept is None:
        return None
    media = codecs.parse_media_type(settings.default_accept)
    if media.essence not in codecs.ANSWER_TYPES:
        raise SettingsError(
            f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r} is not one of "
            f"{list(codecs.ANSWER_TYPES)}"
        )
    return media


def slice_pixels(settings: ServeSettings) -> int:
    """Pixels a request decodes at once: a quarter of the worker's budget, so four requests can overlap."""
    return max(1, settings.worker_pixels // 4)


def _respond(answer: Answer) -> Response:
    if answer.rest is None:
        return Response(b"".join(answer.first), status=200, content_type=answer.content_type)
    # A long batch: streamed slice by slice behind the Content-Length the writer computed in advance.
    response = Response(itertools.chain(answer.first, answer.rest), status=200, content_type=answer.content_type,
                        direct_passthrough=True)
    response.content_length = answer.length
    return response


def _read_body(limit: int) -> bytes | bytearray:
    """The request body, or PayloadTooLarge as soon as it is known to exceed ``limit`` bytes."""
    try:
        return _read_bounded(request.stream, request.content_length, limit)
    except ServeError:
        raise
    except Exception as exc:  # broken chunked encoding, client hung up mid-body, ...
        raise BadRequest(f"cannot read the request body ({describe(exc)})") from exc


def _read_bounded(stream: Any, length: int | None, limit: int) -> bytes | bytearray:
    if length is not None and length > limit:
        if length <= _MAX_DISCARD:
            _discard(stream, length)
        raise PayloadTooLarge(
            f"body is {length} bytes, over the limit of {limit} (SAGEMAKER_MAX_PAYLOAD_IN_MB); send fewer images"
        )
    if length is not None:
        return _read_exactly(stream, length)
    chunks, total = [], 0  # chunked bodies have no length: read at most limit + 1 bytes
    while total <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        _discard(stream, _MAX_DISCARD)
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB)")
    return b"".join(chunks)


def _read_exactly(stream: Any, length: int) -> bytearray:
    """``length`` bytes read into one buffer: a body is held once, never as chunks plus a join."""
    buf = bytearray(length)
    got = 0
    while got < length:
        chunk = stream.read(min(_READ_CHUNK, length - got))
        if not chunk:
            raise BadRequest(f"the body ended after {got} of the {length} bytes its Content-Length announced")
        buf[got:got + len(chunk)] = chunk
        got += len(chunk)
    return buf


def _discard(stream: Any, budget: int) -> None:
    while budget > 0:
        chunk = stream.read(min(_READ_CHUNK, budget))
        if not chunk:
            return
        budget -= len(chunk)


def create_app(
    model: Predictor | ServingModel, settings: ServeSettings, metrics: ServeMetrics | None = None
) -> Flask:
    """A Flask app serving ``model``. A bare Predictor is wrapped as ready, with a batcher started here."""
    metrics = metrics or ServeMetrics()
    if isinstance(model, Predictor):
        serving = ServingModel()
        serving.set_ready(model, make_batcher(model, settings, metrics).start())
    else:
        serving = model
    default_accept = _default_accept(settings)
    limits = decoding.Limits(max_pixels=settings.max_image_pixels, max_images=settings.max_images,
                             max_request_pixels=settings.max_request_pixels)
    budget = PixelBudget(max(settings.worker_pixels, settings.max_image_pixels))
    cache_pixels = slice_pixels(settings)
    monitor = RequestMonitor.load(settings.model_dir, metrics.registry)

    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = None  # _read_body enforces the limit with our own message
    app.extensions["serving_model"] = serving

    @app.before_request
    def _start() -> None:
        g.start = time.perf_counter()
        g.request_id = next((request.headers[h] for h in _ID_HEADERS if h in request.headers), uuid.uuid4().hex)
        g.images = 0

    @app.get("/ping")
    def ping() -> Response:
        # Cheap on purpose: SageMaker gives /ping 2 s, and it must not queue behind inference.
        if serving.state is Readiness.READY:
            return Response(b"", status=200)
        raise NotReady(f"the model is {serving.state.value}")

    @app.post("/invocations")
    def invocations() -> Response:
        loaded = serving.get()
        deadline = time.monotonic() + settings.timeout_s
        # The body is read before any header is judged: a client that sends it all before reading the
        # answer then gets the 415/406 rather than a broken pipe.
        body = _read_body(settings.max_payload_bytes)
        decoder, media = decoding.decoder_for(request.headers.get("Content-Type"))
        accept = codecs.parse_accept(request.headers.get("Accept"))
        codecs.check_acceptable(accept)
        plan = decoding.decode(decoder, body, media, limits, cache_pixels)
        g.images = plan.count
        fallback = codecs.MediaType(codecs.JSONLINES if media.essence == codecs.JSONLINES else codecs.JSON)
        out_type = codecs.negotiate(accept, [m for m in (default_accept, fallback) if m], count=plan.count,
                                    same_shape=len(np.unique(plan.shapes, axis=0)) == 1)
        predictor = loaded.predictor
        # Filled per slice with the maxima so far; the access line is written once the first slice is
        # answered. Later slices stream outside the request context, so they must not touch `g`.
        g.monitoring = seen = {}

        def observe(images: list[np.ndarray], predictions: list[np.ndarray]) -> None:
            for key, value in monitor.observe(images, predictions, predictor.family).items():
                seen[key] = max(value, seen.get(key, value))

        pipeline = Pipeline(predictor, loaded.batcher, budget, slice_pixels=cache_pixels,
                            max_response_bytes=settings.max_response_bytes, on_images=metrics.images.inc,
                            on_predictions=observe)
        return _respond(pipeline.answer(plan, out_type, deadline))

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        workers = settings.workers or 1
        concurrency = settings.max_concurrent_transforms or workers
        # SageMaker requires MaxConcurrentTransforms * MaxPayloadInMB <= 100.
        concurrency = max(1, min(concurrency, 100 // max(1, settings.max_payload_mb)))
        doc = {
            "MaxConcurrentTransforms": concurrency,
            "BatchStrategy": settings.batch_strategy,
            "MaxPayloadInMB": settings.max_payload_mb,
        }
        return Response(json.dumps(doc), status=200, content_type="application/json")

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), status=200, content_type=metrics.content_type)

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and not isinstance(exc, ServeError):
            exc = _from_werkzeug(exc)
        status = status_for(exc)
        if status >= 500 and not isinstance(exc, ServeError):
            log.error("request %s failed", g.get("request_id", "-"), exc_info=exc)
            message = f"internal error; see the container log for request id {g.get('request_id', '-')}"
        else:
            message = str(exc)
        g.error = message
        body = json.dumps({"error": type(exc).__name__, "message": message})
        return Response(body, status=status, content_type="application/json")

    @app.after_request
    def _finish(response: Response) -> Response:
        attributes = request.headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            # Opaque to us; echoed so callers can correlate (SageMaker returns it to the InvokeEndpoint caller).
            response.headers[CUSTOM_ATTRIBUTES] = attributes[:1024]
        response.headers["X-Request-Id"] = g.get("request_id", "")
        route = request.url_rule.rule if request.url_rule else "other"
        latency = time.perf_counter() - g.get("start", time.perf_counter())
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(latency)
        if route != "/ping" or response.status_code != 200 or access_log.isEnabledFor(logging.DEBUG):
            record = {
                "event": "request",
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "content_type": request.headers.get("Content-Type"),
                "accept": request.headers.get("Accept"),
                "bytes_in": request.content_length,
                "bytes_out": response.content_length,
                "images": g.get("images", 0),
                "latency_ms": round(latency * 1000, 2),
            }
            record.update(g.get("monitoring", {}))
            if "error" in g:
                record["error"] = g.error[:300]
            level = logging.DEBUG if route == "/ping" and response.status_code == 200 else logging.INFO
            access_log.log(level, json.dumps(record))
        return response

    return app


def _from_werkzeug(exc: HTTPException) -> ServeError:
    kinds = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}
    return kinds.get(exc.code or 400, BadRequest)(exc.description or exc.name)
