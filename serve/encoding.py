"""Predictions (HxWx3 float32 unit normals) to answer bytes, one record at a time, with the size known first.

Every writer says the exact size of its answer before any prediction is made (PNG: after encoding), so a
real-time endpoint can refuse an answer over SageMaker's 6 MB limit before spending the compute, and a long
batch can be streamed with a Content-Length. JSON numbers are formatted by numpy into fixed-width bytes
(``-0.1234`` / `` 0.1234``; the space is JSON whitespace): no Python float object per value, and the
size is a function of the shape alone.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from serve.codecs import JSON, JSONLINES, NPY, PNG, MediaType

ToImage = Callable[[np.ndarray], np.ndarray]
#: Bytes per pixel of the JSON answer: "[" + 3 x (7-character number + separator) + "," -> 26.
JSON_BYTES_PER_PIXEL = 26
#: Rounding of JSON numbers: 1e-4 on a unit vector is ~0.006 degrees, far below the model's error.
_SCALE = 10_000
#: Pixels formatted per numpy pass: ~150 bytes of temporaries each, so ~10 MB at a time.
_CHUNK_PIXELS = 1 << 16


def _json_prefix(h: int, w: int) -> bytes:
    return b'{"shape":[%d,%d,3],"normals":[' % (h, w)


def json_record_size(h: int, w: int) -> int:
    """Bytes of one ``{"shape", "normals"}`` object for an HxW prediction."""
    return len(_json_prefix(h, w)) + h * (JSON_BYTES_PER_PIXEL * w + 2) - 1 + 2


def _json_rows(block: np.ndarray, last: bool) -> bytes:
    """Rows of one prediction as ``[[x,y,z],...],`` (no trailing comma after the image's last row)."""
    rows, width = block.shape[:2]
    q = np.rint(np.clip(block, -1.0, 1.0) * _SCALE).astype(np.int32)
    a = np.abs(q)
    num = np.empty((rows, width, 3, 8), dtype=np.uint8)  # 7 characters + the separator after them
    num[..., 0] = np.where(q < 0, ord("-"), ord(" "))
    num[..., 1] = ord("0") + a // _SCALE
    num[..., 2] = ord(".")
    for digit, div in enumerate((1000, 100, 10, 1)):
        num[..., 3 + digit] = ord("0") + (a // div) % 10
    num[..., 7] = ord(",")
    line = np.empty((rows, JSON_BYTES_PER_PIXEL * width + 2), dtype=np.uint8)
    pixels = line[:, 1:-1].reshape(rows, width, JSON_BYTES_PER_PIXEL)
    pixels[..., 0] = ord("[")
    pixels[..., 1:25] = num.reshape(rows, width, 24)
    pixels[..., 24] = ord("]")
    pixels[..., 25] = ord(",")
    line[:, 0] = ord("[")
    line[:, -2] = ord("]")  # replaces the comma after the row's last pixel
    line[:, -1] = ord(",")
    out = line.tobytes()
    return out[:-1] if last else out


def json_record(pred: np.ndarray) -> Iterator[bytes]:
    h, w = pred.shape[:2]
    yield _json_prefix(h, w)
    step = max(1, _CHUNK_PIXELS // max(w, 1))
    for r in range(0, h, step):
        yield _json_rows(pred[r:r + step], last=r + step >= h)
    yield b"]}"


@dataclass(frozen=True)
class Writer:
    """How one answer type frames records: ``head``, then each ``record`` in order, then ``tail``."""

    media: MediaType
    batched: bool
    shapes: np.ndarray  # (N, 2): H, W of every prediction
    to_image: ToImage

    def size(self) -> int | None:
        """Exact bytes of the whole answer, or None when only encoding tells (PNG)."""
        kind = self.media.essence
        if kind == PNG:
            return None
        if kind == NPY:
            h, w = self.shapes[0]
            return len(self.head()) + len(self.shapes) * int(h) * int(w) * 3 * self._npy_dtype().itemsize
        records = sum(json_record_size(int(h), int(w)) for h, w in self.shapes)
        if kind == JSONLINES:
            return records + len(self.shapes)
        return records + len(self.head()) + len(self.tail()) + (len(self.shapes) - 1 if self.batched else 0)

    def head(self) -> bytes:
        if self.media.essence == NPY:
            h, w = (int(x) for x in self.shapes[0])
            shape = (len(self.shapes), h, w, 3) if self.batched else (h, w, 3)
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
        parts = list(json_record(pred))
        if kind == JSONLINES:
            parts.append(b"\n")
        elif self.batched and index > 0:
            parts.insert(0, b",")
        return parts

    def _npy_dtype(self) -> np.dtype:
        return np.dtype(self.media.params.get("dtype", "float32").lower())


def encode(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage) -> bytes:
    """The whole answer at once (tests and small callers; the server streams through ``Writer``)."""
    shapes = np.array([p.shape[:2] for p in preds], dtype=np.int64)
    writer = Writer(media, batched, shapes, to_image)
    return b"".join([writer.head(), *(b for i, p in enumerate(preds) for b in writer.record(i, p)), writer.tail()])
