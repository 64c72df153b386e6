"""The Flask app: thin views that adapt HTTP to ``serve.invocations`` and write one access line per request.

``create_app(predictor, batcher, settings)`` takes a loaded, warm predictor and its started batcher. A gunicorn
worker builds the app only once its model is ready and accepts no connection before that (container/serving.py),
so the app has no loading state: /ping answers 200 whenever it can answer at all.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from serve.batching import Batcher
from serve.body import read_body
from serve.errors import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, ServeError
from serve.invocations import Invocations, Reply, RequestLog, error_reply
from serve.metrics import ServeMetrics
from serve.predictor import Predictor
from serve.settings import ServeSettings

access_log = logging.getLogger("serve.access")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
_ID_HEADERS = ("X-Amzn-SageMaker-Inference-Id", "X-Amzn-Trace-Id", "X-Request-Id")


def create_app(
    predictor: Predictor, batcher: Batcher, settings: ServeSettings, metrics: ServeMetrics | None = None
) -> Flask:
    """A Flask app answering with ``predictor`` through ``batcher`` (started), under ``settings``' limits."""
    metrics = metrics or ServeMetrics()
    views = _Views(Invocations(predictor, batcher, settings, metrics), settings, metrics)
    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = None  # read_body enforces the limit with our own message
    app.before_request(_start)
    app.add_url_rule("/ping", "ping", views.ping, methods=["GET"])
    app.add_url_rule("/invocations", "invocations", views.invocations, methods=["POST"])
    app.add_url_rule("/execution-parameters", "execution_parameters", views.execution_parameters, methods=["GET"])
    app.add_url_rule("/metrics", "metrics", views.metrics, methods=["GET"])
    app.register_error_handler(Exception, views.error)
    app.after_request(views.finish)
    return app


def execution_parameters(settings: ServeSettings) -> dict[str, object]:
    """What batch transform asks GET /execution-parameters for."""
    # One request per inference thread keeps every lane busy without queueing behind each other.
    lanes = (settings.workers or 1) * (settings.inference_threads or 1)
    concurrency = settings.max_concurrent_transforms or lanes
    # SageMaker requires MaxConcurrentTransforms * MaxPayloadInMB <= 100.
    concurrency = max(1, min(concurrency, 100 // max(1, settings.max_payload_mb)))
    return {
        "MaxConcurrentTransforms": concurrency,
        "BatchStrategy": settings.batch_strategy,
        "MaxPayloadInMB": settings.max_payload_mb,
    }


def _start() -> None:
    g.start = time.perf_counter()
    g.request_id = next((request.headers[h] for h in _ID_HEADERS if h in request.headers), uuid.uuid4().hex)


def _response(reply: Reply) -> Response:
    g.request_log = reply.log
    # A streamed body keeps the Content-Length the pipeline computed in advance.
    return Response(reply.body, status=reply.status, headers=reply.headers,
                    direct_passthrough=not isinstance(reply.body, bytes))


class _Views:
    def __init__(self, invocations: Invocations, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self._invocations, self._settings, self._metrics = invocations, settings, metrics

    def ping(self) -> Response:
        # Cheap on purpose: SageMaker gives /ping 2 s, and it must not queue behind inference.
        return Response(b"", status=200)

    def invocations(self) -> Response:
        deadline = time.monotonic() + self._settings.timeout_s
        # The body is read before any header is judged: a client that sends it all before reading the
        # answer then gets the 415/406 rather than a broken pipe.
        body = read_body(request.stream, request.content_length, self._settings.max_payload_bytes)
        return _response(self._invocations(body, request.headers.get("Content-Type"), request.headers.get("Accept"),
                                           request_id=g.request_id, deadline=deadline))

    def execution_parameters(self) -> Response:
        return Response(json.dumps(execution_parameters(self._settings)), status=200, content_type="application/json")

    def metrics(self) -> Response:
        return Response(self._metrics.render(), status=200, content_type=self._metrics.content_type)

    def error(self, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and not isinstance(exc, ServeError):
            exc = _from_werkzeug(exc)
        return _response(error_reply(exc, g.get("request_id", "-")))

    def finish(self, response: Response) -> Response:
        attributes = request.headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            # Opaque to us; echoed so callers can correlate (SageMaker returns it to the InvokeEndpoint caller).
            response.headers[CUSTOM_ATTRIBUTES] = attributes[:1024]
        response.headers["X-Request-Id"] = g.get("request_id", "")
        route = request.url_rule.rule if request.url_rule else "other"
        latency = time.perf_counter() - g.get("start", time.perf_counter())
        self._metrics.requests.labels(route, str(response.status_code)).inc()
        self._metrics.latency.labels(route).observe(latency)
        quiet = route == "/ping" and response.status_code == 200
        if not quiet or access_log.isEnabledFor(logging.DEBUG):
            record = _access_record(response, g.get("request_log") or RequestLog(), latency)
            access_log.log(logging.DEBUG if quiet else logging.INFO, json.dumps(record))
        return response


def _access_record(response: Response, request_log: RequestLog, latency: float) -> dict[str, object]:
    record: dict[str, object] = {
        "event": "request",
        "request_id": g.get("request_id"),
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "content_type": request.headers.get("Content-Type"),
        "accept": request.headers.get("Accept"),
        "bytes_in": request.content_length,
        "bytes_out": response.content_length,
        "images": request_log.images,
        "latency_ms": round(latency * 1000, 2),
    }
    record.update(request_log.monitoring)
    if request_log.error is not None:
        record["error"] = request_log.error[:300]
    return record


def _from_werkzeug(exc: HTTPException) -> ServeError:
    kinds = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}
    return kinds.get(exc.code or 400, BadRequest)(exc.description or exc.name)
