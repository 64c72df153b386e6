"""One request through the model, slice by slice, so memory stays flat in the number of records.

A slice is a run of consecutive records with at most ``slice_pixels`` pixels (always at least one record).
For each slice the request takes room in the worker's ``PixelBudget``, decodes the images, predicts them
through the batcher and encodes their answer bytes, then gives the room back. The first slice runs before
the answer starts, so small requests (one slice) fail with a proper status; later slices of a large batch
stream out behind a Content-Length that the writer computed in advance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from serve.batching import Batcher
from serve.budget import PixelBudget
from serve.codecs import MediaType
from serve.decoding import Plan
from serve.encoding import Output, Writer
from serve.errors import ResponseTooLarge
from serve.predictor import Predictor

log = logging.getLogger(__name__)

_SMALLER = ("ask for a smaller answer type (Accept: image/png, ~3 bytes per pixel, one image; or "
            "application/x-npy; dtype=float16, 6 bytes per pixel), send smaller or fewer images, or use batch "
            "transform or an async endpoint (SERVE_ENDPOINT_TYPE=async) where answers are not limited")


@dataclass(frozen=True)
class Answer:
    content_type: str
    length: int
    #: The first slice's bytes (everything, for a one-slice request).
    first: list[bytes]
    #: The remaining bytes, produced lazily (None: ``first`` is the whole answer).
    rest: Iterator[bytes] | None


def slices(shapes: np.ndarray, slice_pixels: int) -> Iterator[range]:
    """Consecutive record ranges of at most ``slice_pixels`` pixels each (a bigger record alone)."""
    start, total = 0, 0
    for i, (h, w) in enumerate(shapes):
        pixels = int(h) * int(w)
        if i > start and total + pixels > slice_pixels:
            yield range(start, i)
            start, total = i, 0
        total += pixels
    if start < len(shapes):
        yield range(start, len(shapes))


#: Sees each slice's (images, predictions) while both are still in memory (drift monitoring).
SliceObserver = Callable[[list[np.ndarray], list[np.ndarray]], None]


class Pipeline:
    """One worker's path from plan to answer bytes; built once, shared by its concurrent requests (it keeps
    no per-request state)."""

    def __init__(self, predictor: Predictor, batcher: Batcher, budget: PixelBudget, *, slice_pixels: int,
                 max_response_bytes: int | None, on_images: Callable[[int], None] | None = None) -> None:
        if not 1 <= slice_pixels <= budget.capacity:
            # A slice holds at most max(slice_pixels, one image) pixels: both must fit the budget, or it waits forever.
            raise ValueError(f"slice_pixels={slice_pixels} must be in 1..{budget.capacity} (the budget)")
        self.predictor, self.batcher, self.budget = predictor, batcher, budget
        self.slice_pixels = slice_pixels
        self.max_response_bytes = max_response_bytes
        self._on_images = on_images

    def answer(self, plan: Plan, out_type: MediaType, deadline: float, on_predictions: SliceObserver | None = None
               ) -> Answer:
        family = self.predictor.family
        writer = Writer(out_type, plan.batched, plan.shapes, family.to_image, Output.of(family.spec))
        size = writer.size()
        self._check_size(size, out_type)  # before any compute, when the size is known up front
        ranges = list(slices(plan.shapes, self.slice_pixels))
        parts = self._run(plan, ranges, writer, deadline, on_predictions)
        first = [writer.head(), *next(parts)]
        if len(ranges) == 1:
            first.append(writer.tail())
            if size is None:  # PNG: one image, known once encoded
                size = sum(map(len, first))
                self._check_size(size, out_type)
            return Answer(str(out_type), size, first, None)
        assert size is not None, "only PNG has no size in advance, and it holds one image"
        return Answer(str(out_type), size, first, _guarded(parts, writer.tail()))

    def _check_size(self, size: int | None, out_type: MediaType) -> None:
        if size is not None and self.max_response_bytes is not None and size > self.max_response_bytes:
            raise ResponseTooLarge(
                f"the answer would be {size} bytes of {out_type.essence}, over this endpoint's limit of "
                f"{self.max_response_bytes} bytes (SERVE_MAX_RESPONSE_MB; SageMaker real-time endpoints return at "
                f"most 6 MB); {_SMALLER}"
            )

    def _run(self, plan: Plan, ranges: list[range], writer: Writer, deadline: float,
             on_predictions: SliceObserver | None) -> Iterator[list[bytes]]:
        predictor = self.predictor
        for part in ranges:
            pixels = int(np.prod(plan.shapes[part.start:part.stop], axis=1).sum())
            with self.budget.hold(pixels, deadline):
                images = [plan.load(i) for i in part]
                tensors = [predictor.prepare(im) for im in images]
                outputs = self.batcher.submit(tensors, timeout=max(0.0, deadline - time.monotonic()))
                del tensors
                predictions = [predictor.finish(out, im.shape) for out, im in zip(outputs, images, strict=True)]
                del outputs
                if on_predictions is not None:
                    on_predictions(images, predictions)
                encoded: list[bytes] = []
                for i, prediction in zip(part, predictions, strict=True):
                    encoded.extend(writer.record(i, prediction))
                del images, predictions
            if self._on_images is not None:
                self._on_images(len(part))
            yield encoded


def _guarded(parts: Iterator[list[bytes]], tail: bytes) -> Iterator[bytes]:
    """The later slices; a failure there can only cut the answer short (the status is sent), so log it."""
    try:
        for chunk in parts:
            yield from chunk
    except Exception:
        log.exception("a streamed answer failed after its first slice; the client sees a short body")
        raise
    yield tail
