"""POST /invocations as one call on (body, Content-Type, Accept) that returns a ``Reply``: no Flask inside.

``Invocations`` is built once per worker from the loaded predictor and its started batcher; the Flask view only
reads the body and hands it here, and tests call it directly. A request's path:

- ``decoding.decoder_for`` picks the decoder for the Content-Type (415) and ``codecs.check_acceptable`` rejects
  an Accept we can never satisfy (406), before any decoding;
- ``decoding.decode`` checks every record into a ``Plan`` (400): counts and sizes, no pixels kept;
- ``codecs.negotiate`` picks the answer type from the Accept header, else from ``codecs.fallback_types``;
- ``pipeline.Pipeline`` runs the plan slice by slice: room in the worker's ``PixelBudget``, decode,
  ``Predictor.prepare``, ``Batcher.submit`` (its inference thread runs ``Predictor.forward``),
  ``Predictor.finish``, then ``encoding.Writer`` turns predictions into the answer's bytes.

Every exception becomes a reply in ``error_reply``, the one place where the taxonomy (``serve.errors``) meets HTTP.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from serve import codecs, decoding
from serve.batching import Batcher
from serve.budget import PixelBudget
from serve.drift import RequestMonitor
from serve.errors import ServeError, status_for
from serve.metrics import ServeMetrics
from serve.pipeline import Answer, Pipeline
from serve.predictor import Predictor
from serve.settings import ServeSettings

log = logging.getLogger(__name__)


@dataclass
class RequestLog:
    """What the access line reports beyond HTTP, filled in while the request is answered."""

    images: int = 0
    #: Drift fields (``serve.drift``), maxima so far: slices streamed after the first one add to them.
    monitoring: dict[str, float] = field(default_factory=dict)
    #: The message the client was given, for an error reply.
    error: str | None = None


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    #: The whole body, or (a batch of several slices) its chunks, streamed behind the Content-Length in ``headers``.
    body: bytes | Iterator[bytes]
    log: RequestLog = field(default_factory=RequestLog)


def error_reply(exc: BaseException, request_id: str, request_log: RequestLog | None = None) -> Reply:
    """The reply for ``exc``: the taxonomy's status and message; anything outside it is a logged, generic 500."""
    status = status_for(exc)
    if status >= 500 and not isinstance(exc, ServeError):
        log.error("request %s failed", request_id, exc_info=exc)
        message = f"internal error; see the container log for request id {request_id}"
    else:
        message = str(exc)
    request_log = request_log or RequestLog()
    request_log.error = message
    body = json.dumps({"error": type(exc).__name__, "message": message}).encode()
    return Reply(status, {"Content-Type": "application/json"}, body, request_log)


def slice_pixels(settings: ServeSettings) -> int:
    """Pixels a request decodes at once: a quarter of the worker's budget, so four requests can overlap."""
    return max(1, settings.worker_pixels // 4)


class Invocations:
    """Answers /invocations requests with one worker's predictor and batcher, within its settings' limits."""

    def __init__(self, predictor: Predictor, batcher: Batcher, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self.predictor = predictor
        self.timeout_s = settings.timeout_s
        self.default_accept = settings.default_answer_type
        self.limits = decoding.Limits(max_pixels=settings.max_image_pixels, max_images=settings.max_images,
                                      max_request_pixels=settings.max_request_pixels)
        budget = PixelBudget(max(settings.worker_pixels, settings.max_image_pixels))
        self.slice_pixels = slice_pixels(settings)
        self.monitor = RequestMonitor.load(settings.model_dir, metrics.registry)
        self.pipeline = Pipeline(predictor, batcher, budget, slice_pixels=self.slice_pixels,
                                 max_response_bytes=settings.max_response_bytes, on_images=metrics.images.inc)

    def __call__(self, body: bytes | bytearray, content_type: str | None, accept: str | None, *,
                 request_id: str = "-", deadline: float | None = None) -> Reply:
        """The reply to one request; ``deadline`` (monotonic) defaults to the request timeout from now."""
        request_log = RequestLog()
        if deadline is None:
            deadline = time.monotonic() + self.timeout_s
        try:
            answer = self._answer(body, content_type, accept, deadline, request_log)
        except Exception as exc:
            return error_reply(exc, request_id, request_log)
        headers = {"Content-Type": answer.content_type, "Content-Length": str(answer.length)}
        if answer.rest is None:
            return Reply(200, headers, b"".join(answer.first), request_log)
        return Reply(200, headers, itertools.chain(answer.first, answer.rest), request_log)

    def _answer(self, body: bytes | bytearray, content_type: str | None, accept: str | None, deadline: float,
                request_log: RequestLog) -> Answer:
        decoder, media = decoding.decoder_for(content_type)
        wanted = codecs.parse_accept(accept)
        codecs.check_acceptable(wanted)
        plan = decoding.decode(decoder, body, media, self.limits, self.slice_pixels)
        request_log.images = plan.count
        out_type = codecs.negotiate(wanted, codecs.fallback_types(media, self.default_accept), count=plan.count,
                                    same_shape=len(np.unique(plan.shapes, axis=0)) == 1)
        seen = request_log.monitoring

        def observe(images: list[np.ndarray], predictions: list[np.ndarray]) -> None:
            for key, value in self.monitor.observe(images, predictions, self.predictor.summarize_prediction).items():
                seen[key] = max(value, seen.get(key, value))

        return self.pipeline.answer(plan, out_type, deadline, on_predictions=observe)
