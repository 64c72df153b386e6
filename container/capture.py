"""Reading what a SageMaker endpoint saw: data-capture files and plain image folders.

Data capture writes JSON Lines files (``.jsonl``) under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``; each
line is one request::

    {"captureData": {"endpointInput":  {"observedContentType": "image/png", "mode": "INPUT",
                                        "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {...same keys, mode OUTPUT...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-12-03T16:00:00Z"}, "eventVersion": "0"}

``encoding`` is ``BASE64`` (binary types, and any type not listed as JSON in the capture config) or ``JSON``
/ text (the payload as a string). The request body is decoded like the server does for the types it accepts
(PNG/JPEG, npy, JSON instances, JSON Lines); what cannot be decoded is reported as skipped, never fatal.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
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


def _pil(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"))


def _npy(data: bytes) -> list[np.ndarray]:
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if arr.ndim == 4 and arr.shape[1] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(0, 2, 3, 1)  # Nx3xHxW, as the server accepts
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"npy array of shape {arr.shape} is not HxWx3 or a batch of them")
    return [a if a.dtype == np.uint8 else np.clip(a.astype(np.float32), 0, 1) for a in arr]


def _instance(value: Any) -> np.ndarray:
    if isinstance(value, dict) and "b64" in value:
        value = value["b64"]
    if isinstance(value, str):
        return _pil(base64.b64decode(value, validate=True))
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"JSON instance of shape {arr.shape} is not HxWx3")
    return arr.astype(np.uint8) if np.issubdtype(arr.dtype, np.integer) else np.clip(arr.astype(np.float32), 0, 1)


def decode_body(data: bytes, content_type: str) -> list[np.ndarray]:
    """The images of a request body of ``content_type`` (parameters such as ``; charset`` are ignored)."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence in ("image/png", "image/jpeg"):
        return [_pil(data)]
    if essence == "application/x-npy":
        return _npy(data)
    if essence == "application/json":
        doc = json.loads(data)
        return [_instance(v) for v in (doc["instances"] if isinstance(doc, dict) else doc)]
    if essence == "application/jsonlines":
        return [_instance(json.loads(line)) for line in data.splitlines() if line.strip()]
    raise ValueError(f"content type {content_type!r} is not one the server accepts")


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
            except (KeyError, TypeError, ValueError, binascii.Error, OSError) as exc:
                yield Skipped(where, f"{type(exc).__name__}: {exc}"[:300])


def read_inputs(root: Path) -> Iterator[Observed | Skipped]:
    """Every capture file and image under ``root`` (a file or a folder, searched recursively, sorted)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        suffix = path.suffix.lower()
        if suffix in CAPTURE_SUFFIXES:
            yield from read_capture_file(path)
        elif suffix in IMAGE_SUFFIXES:
            try:
                yield Observed(str(path), [_pil(path.read_bytes())])
            except OSError as exc:
                yield Skipped(str(path), f"unreadable image: {exc}"[:300])
