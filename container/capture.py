"""Reading what a SageMaker endpoint saw: data-capture files and plain image folders.

Data capture writes JSON Lines files (``.jsonl``) under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``; each
line is one request::

    {"captureData": {"endpointInput":  {"observedContentType": "image/png", "mode": "INPUT",
                                        "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {...same keys, mode OUTPUT...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-12-03T16:00:00Z"}, "eventVersion": "0"}

``encoding`` is ``BASE64`` (binary types, and any type not listed as JSON in the capture config) or ``JSON``
/ text (the payload as a string). The request body goes through the server's decoders (``serve.decoding``), so
the offline report sees the pixels ``serve/drift`` saw; what cannot be decoded is reported as skipped, never
fatal.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serve import decoding
from serve.errors import ServeError
from serve.settings import MAX_IMAGE_PIXELS_CEILING

#: Image files by suffix, read as the request bodies of these types.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
#: An endpoint may have accepted images up to the highest SERVE_MAX_IMAGE_PIXELS, in any number per request.
_LIMITS = decoding.Limits(max_pixels=MAX_IMAGE_PIXELS_CEILING)
_UNREADABLE = (KeyError, TypeError, ValueError, binascii.Error, OSError, ServeError)
CAPTURE_SUFFIXES = (".jsonl",)


@dataclass(frozen=True)
class Observed:
    """The images of one request (or one image file), where they came from, when, and the answer's arrays
    (capture only; empty when the answer was not captured or is not an array type)."""

    source: str
    images: list[np.ndarray]
    time: str | None = None
    predictions: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


def decode_body(data: bytes, content_type: str) -> list[np.ndarray]:
    """The images of a request body of ``content_type``, decoded by the server's own decoders (EXIF orientation,
    16-bit grey, channels-first arrays), so the report scores the pixels the endpoint's drift monitor scored.
    A body the server would reject raises its ``ServeError``, with the server's reason."""
    decoder, media = decoding.decoder_for(content_type)
    # Every image is kept from the checking pass: the caller takes them all at once anyway.
    return decoding.decode(decoder, data, media, _LIMITS, cache_pixels=sys.maxsize).images


def _prediction(record: Any) -> np.ndarray:
    # ``{"shape": [...], "<output name>": [...]}``: the family's spec names the key, so take the one that is
    # not "shape" (the monitor job reads answers of whichever family the endpoint serves).
    (values,) = [v for k, v in record.items() if k != "shape"]
    return np.asarray(values, dtype=np.float32)


def decode_answer(data: bytes, content_type: str) -> list[np.ndarray]:
    """The prediction arrays of an answer: JSON ``{"shape", "<output name>"}`` (or ``{"predictions": [...]}``),
    JSON Lines of those, or npy. Pictures (``image/png``) carry no exact values and give none."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence == "application/json":
        doc = json.loads(data)
        return [_prediction(r) for r in (doc["predictions"] if "predictions" in doc else [doc])]
    if essence == "application/jsonlines":
        return [_prediction(json.loads(line)) for line in data.splitlines() if line.strip()]
    if essence == "application/x-npy":
        arr = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32)
        return list(arr) if arr.ndim == 4 else [arr]
    return []


def _answers(record: dict[str, Any]) -> list[np.ndarray]:
    part = record["captureData"].get("endpointOutput")
    if not part or not part.get("data"):
        return []
    try:
        return decode_answer(payload_bytes(part), part.get("observedContentType", ""))
    except (KeyError, TypeError, ValueError, binascii.Error):
        return []  # the inputs still count; an unreadable answer only loses the prediction histogram


def payload_bytes(part: dict[str, Any]) -> bytes:
    """The raw bytes of a captureData part, whatever its ``encoding``."""
    data, encoding = part.get("data", ""), str(part.get("encoding", "")).upper()
    if encoding == "BASE64":
        return base64.b64decode(data, validate=True)
    return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def read_capture_file(path: Path) -> Iterator[Observed | Skipped]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
                part = record["captureData"]["endpointInput"]
                images = decode_body(payload_bytes(part), part.get("observedContentType", ""))
                yield Observed(where, images, record.get("eventMetadata", {}).get("inferenceTime"), _answers(record))
            except _UNREADABLE as exc:
                yield Skipped(where, f"{type(exc).__name__}: {exc}"[:300])


def read_inputs(root: Path) -> Iterator[Observed | Skipped]:
    """Every capture file and image under ``root`` (a file or a folder, searched recursively, sorted)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        suffix = path.suffix.lower()
        if suffix in CAPTURE_SUFFIXES:
            yield from read_capture_file(path)
        elif suffix in IMAGE_TYPES:
            try:
                yield Observed(str(path), decode_body(path.read_bytes(), IMAGE_TYPES[suffix]))
            except (OSError, ServeError) as exc:
                yield Skipped(str(path), f"unreadable image: {exc}"[:300])
