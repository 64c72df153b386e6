"""Predictions (HxWxC float32, e.g. unit normals) to answer bytes, one record at a time, with the size known first.

Every writer says the exact size of its answer before any prediction is made (PNG: after encoding), so a
real-time endpoint can refuse an answer over SageMaker's 6 MB limit before spending the compute, and a long
batch can be streamed with a Content-Length. JSON numbers are formatted by numpy into fixed-width bytes
(``-0.1234`` / `` 0.1234``; the space is JSON whitespace), wide enough for the family's declared output range:
no Python float object per value, and the size is a function of the shape alone. The prediction's JSON key
and channel count come from the family's spec (``output_name``, ``output_channels``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from serve.codecs import JSON, JSONLINES, NPY, PNG, MediaType

ToImage = Callable[[np.ndarray], np.ndarray]
#: Rounding of JSON numbers: 1e-4 on a unit vector is ~0.006 degrees, far below the model's error.
_SCALE = 10_000
#: Pixels formatted per numpy pass: ~150 bytes of temporaries each, so ~10 MB at a time.
_CHUNK_PIXELS = 1 << 16


@dataclass(frozen=True)
class Output:
    """What one prediction is, from the family's spec: its JSON key, channels and value range."""

    name: str
    channels: int
    low: float
    high: float

    @classmethod
    def of(cls, spec: Any) -> Output:
        """From a ``model.spec.FamilySpec``."""
        low, high = spec.output_range
        return cls(spec.output_name, spec.output_channels, float(low), float(high))

    @property
    def int_digits(self) -> int:
        """Digits before the point that every value in [low, high] fits in (1 for unit normals)."""
        return len(str(round(max(abs(self.low), abs(self.high)) * _SCALE) // _SCALE))

    @property
    def json_bytes_per_pixel(self) -> int:
        """"[" + channels x (sign, digits, ".", 4 decimals, separator) + "," -> 26 for unit normals."""
        return 2 + self.channels * (self.int_digits + 7)


def _json_prefix(h: int, w: int, out: Output) -> bytes:
    return b'{"shape":[%d,%d,%d],"%s":[' % (h, w, out.channels, out.name.encode())


def json_record_size(h: int, w: int, out: Output) -> int:
    """Bytes of one ``{"shape", "<output name>"}`` object for an HxW prediction."""
    return len(_json_prefix(h, w, out)) + h * (out.json_bytes_per_pixel * w + 2) - 1 + 2


def _numbers(block: np.ndarray, out: Output) -> np.ndarray:
    """Each value as fixed-width ASCII ``[spaces][sign]digits.dddd,``: JSON (no leading zeros), one width."""
    digits = out.int_digits
    kind = np.int32 if 10**digits * _SCALE < 2**31 else np.int64
    q = np.rint(np.clip(block, out.low, out.high) * _SCALE).astype(kind)
    a = np.abs(q)
    whole = a // _SCALE
    num = np.empty((*block.shape, digits + 7), dtype=np.uint8)
    sign = np.where(q < 0, ord("-"), ord(" "))
    if digits == 1:  # values below 10 (unit normals): the sign, then the one digit; no padding to place
        num[..., 0] = sign
        num[..., 1] = ord("0") + whole
    else:
        significant = np.ones_like(whole)
        for power in range(1, digits):
            significant += whole >= 10**power
        lead = digits - significant  # slots before the sign: padding spaces (JSON whitespace)
        for j in range(digits + 1):  # slot 0..digits: padding, then the sign, then the integer digits
            digit = ord("0") + (whole // 10 ** (digits - j)) % 10 if j > 0 else 0
            num[..., j] = np.where(j < lead, ord(" "), np.where(j == lead, sign, digit))
    num[..., digits + 1] = ord(".")
    for k, div in enumerate((1000, 100, 10, 1)):
        num[..., digits + 2 + k] = ord("0") + (a // div) % 10
    num[..., digits + 6] = ord(",")
    return num


def _json_rows(block: np.ndarray, last: bool, out: Output) -> bytes:
    """Rows of one prediction as ``[[x,y,z],...],`` (no trailing comma after the image's last row)."""
    rows, width = block.shape[:2]
    per_pixel, width_bytes = out.json_bytes_per_pixel, out.channels * (out.int_digits + 7)
    line = np.empty((rows, per_pixel * width + 2), dtype=np.uint8)
    pixels = line[:, 1:-1].reshape(rows, width, per_pixel)
    pixels[..., 0] = ord("[")
    pixels[..., 1:per_pixel - 1] = _numbers(block[..., :out.channels], out).reshape(rows, width, width_bytes)
    pixels[..., per_pixel - 2] = ord("]")  # replaces the separator after the pixel's last number
    pixels[..., per_pixel - 1] = ord(",")
    line[:, 0] = ord("[")
    line[:, -2] = ord("]")  # replaces the comma after the row's last pixel
    line[:, -1] = ord(",")
    result = line.tobytes()
    return result[:-1] if last else result


def json_record(pred: np.ndarray, out: Output) -> Iterator[bytes]:
    h, w = pred.shape[:2]
    yield _json_prefix(h, w, out)
    step = max(1, _CHUNK_PIXELS // max(w, 1))
    for r in range(0, h, step):
        yield _json_rows(pred[r:r + step], last=r + step >= h, out=out)
    yield b"]}"


@dataclass(frozen=True)
class Writer:
    """How one answer type frames records: ``head``, then each ``record`` in order, then ``tail``."""

    media: MediaType
    batched: bool
    shapes: np.ndarray  # (N, 2): H, W of every prediction
    to_image: ToImage
    output: Output

    def size(self) -> int | None:
        """Exact bytes of the whole answer, or None when only encoding tells (PNG)."""
        kind = self.media.essence
        if kind == PNG:
            return None
        if kind == NPY:
            h, w = self.shapes[0]
            values = int(h) * int(w) * self.output.channels
            return len(self.head()) + len(self.shapes) * values * self._npy_dtype().itemsize
        records = sum(json_record_size(int(h), int(w), self.output) for h, w in self.shapes)
        if kind == JSONLINES:
            return records + len(self.shapes)
        return records + len(self.head()) + len(self.tail()) + (len(self.shapes) - 1 if self.batched else 0)

    def head(self) -> bytes:
        if self.media.essence == NPY:
            h, w = (int(x) for x in self.shapes[0])
            c = self.output.channels
            shape = (len(self.shapes), h, w, c) if self.batched else (h, w, c)
            buf = io.BytesIO()
            header = {"descr": np.lib.format.dtype_to_descr(self._npy_dtype()), "fortran_order": False,
                      "shape": shape}
            np.lib.format.write_array_header_1_0(buf, header)  # magic + header, as numpy.save writes them
            return buf.getvalue()
        if self.media.essence == JSON and self.batched:
            return b'{"predictions":['
        return b""

    def tail(self) -> bytes:
        return b"]}" if self.media.essence == JSON and self.batched else b""

    def record(self, index: int, pred: np.ndarray) -> list[bytes]:
        kind = self.media.essence
        if kind == NPY:
            return [np.ascontiguousarray(pred, dtype=self._npy_dtype()).tobytes()]
        if kind == PNG:
            buf = io.BytesIO()
            # Level 1: several times faster than the default for ~10% larger files; the answer is transient.
            Image.fromarray(self.to_image(pred)).save(buf, format="PNG", compress_level=1)
            return [buf.getvalue()]
        parts = list(json_record(pred, self.output))
        if kind == JSONLINES:
            parts.append(b"\n")
        elif self.batched and index > 0:
            parts.insert(0, b",")
        return parts

    def _npy_dtype(self) -> np.dtype:
        return np.dtype(self.media.params.get("dtype", "float32").lower())


def encode(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage, output: Output) -> bytes:
    """The whole answer at once (tests and small callers; the server streams through ``Writer``)."""
    shapes = np.array([p.shape[:2] for p in preds], dtype=np.int64)
    writer = Writer(media, batched, shapes, to_image, output)
    return b"".join([writer.head(), *(b for i, p in enumerate(preds) for b in writer.record(i, p)), writer.tail()])
