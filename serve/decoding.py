"""Request bodies to a *plan*: how many images, their sizes, and a way to decode image i on demand.

Decoding is in two passes so a worker's memory does not grow with the number of records. ``plan`` checks
every record (full decode, pixels dropped at once, except the first slice's, kept for reuse) so that a bad
record is a 400 before any work, and the total pixel count is known up front. The pipeline then decodes
the records again slice by slice. Per record the plan keeps a few integers, never a Python object.

Images come out as HxWx3 arrays, uint8 or float32 in [0, 1], checked for shape, size and finiteness, so the
predictor never sees client garbage.
"""

from __future__ import annotations

import base64
import binascii
import codecs as _codecs
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from serve.codecs import JPEG, JSON, JSONLINES, NPY, PNG, MediaType, parse_media_type
from serve.errors import BadRequest, ServeError, UnsupportedMediaType
from serve.imagefiles import decode_image_file, describe

_NPY_INPUT_DTYPES = {np.dtype(np.uint8), np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}
#: A float pixel may stray this far outside [0, 1] (rounding in the client's own conversion).
_FLOAT_TOLERANCE = 1e-3
_WHITESPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)
_UTF8 = {"utf-8", "utf8", "ascii", "us-ascii"}


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    #: None: no limit.
    max_images: int | None = None
    max_request_pixels: int | None = None


@dataclass
class Plan:
    """A checked request: ``count`` images of ``shapes[i] = (H, W)``; ``load(i)`` decodes image i again."""

    count: int
    shapes: np.ndarray
    loader: Callable[[int], np.ndarray]
    #: The request was a batch (npy with a leading N, JSON instances, JSON lines): answer with a batch.
    batched: bool
    cache: dict[int, np.ndarray] = field(default_factory=dict)

    def load(self, i: int) -> np.ndarray:
        cached = self.cache.pop(i, None)
        return cached if cached is not None else self.loader(i)

    @property
    def images(self) -> list[np.ndarray]:
        """Every image decoded (tests and small requests only: the pipeline loads slice by slice)."""
        return [self.load(i) for i in range(self.count)]


# -- validation shared by every decoder ----------------------------------------------------------------


def check_image(arr: np.ndarray, limits: Limits, where: str = "image") -> np.ndarray:
    """One HxWx3 image as uint8 or float32 in [0, 1], or BadRequest saying what is wrong with it."""
    if arr.dtype.kind not in "uif":
        raise BadRequest(f"{where}: pixels must be numbers, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadRequest(f"{where}: expected an HxWx3 RGB image, got shape {list(arr.shape)}")
    h, w = arr.shape[:2]
    if h < 1 or w < 1:
        raise BadRequest(f"{where}: image is empty (shape {list(arr.shape)})")
    if h * w > limits.max_pixels:
        raise BadRequest(
            f"{where}: {h}x{w} = {h * w} pixels is over the limit of {limits.max_pixels} (SERVE_MAX_IMAGE_PIXELS); "
            "downscale the image or raise the limit"
        )
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in "ui":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise BadRequest(f"{where}: integer pixels must be in [0, 255], got [{lo}, {hi}]")
        return arr.astype(np.uint8)
    out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise BadRequest(f"{where}: contains NaN or Inf")
    lo, hi = float(out.min()), float(out.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
        raise BadRequest(
            f"{where}: float pixels must be in [0, 1], got [{lo:.4g}, {hi:.4g}]; send uint8 for 0-255 values"
        )
    return np.clip(out, 0.0, 1.0)


def check_count(n: int, limits: Limits) -> None:
    if n < 1:
        raise BadRequest("the request holds no images")
    if limits.max_images is not None and n > limits.max_images:
        raise BadRequest(f"{n} images in one request is over the limit of {limits.max_images} (SERVE_MAX_IMAGES); "
                         "split the request or raise the limit")


def plan(count: int, loader: Callable[[int], np.ndarray], batched: bool, limits: Limits, cache_pixels: int) -> Plan:
    """Check every record (a bad one is a 400 now, not halfway through the answer) and the pixel total."""
    check_count(count, limits)
    shapes = np.empty((count, 2), dtype=np.int64)
    result = Plan(count, shapes, loader, batched)
    total = cached = 0
    for i in range(count):
        image = loader(i)
        shapes[i] = image.shape[:2]
        total += image.shape[0] * image.shape[1]
        if limits.max_request_pixels is not None and total > limits.max_request_pixels:
            raise BadRequest(
                f"the request decodes to over {limits.max_request_pixels} pixels in total (SERVE_MAX_REQUEST_PIXELS; "
                f"{total} after {i + 1} of {count} images); split it into smaller requests or raise the limit"
            )
        if cached + image.shape[0] * image.shape[1] <= cache_pixels:
            result.cache[i] = image
            cached += image.shape[0] * image.shape[1]
    return result


# -- decoders -------------------------------------------------------------------------------------------


def decode_image(data: bytes, media: MediaType, limits: Limits, cache_pixels: int = 0) -> Plan:
    def load(_: int) -> np.ndarray:
        return decode_image_file(data, limits.max_pixels, "body", lambda a: check_image(a, limits, "body"))

    return plan(1, load, False, limits, cache_pixels)


def _npy_array(data: bytes, limits: Limits) -> np.ndarray:
    """Parse an .npy body without trusting its header: shape and size are checked before any allocation."""
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise BadRequest(f"npy format version {version} is not supported; use 1.0 or 2.0 (numpy.save)")
    except BadRequest:
        raise
    except Exception as exc:
        raise BadRequest(f"body is not an .npy file ({describe(exc)}); write it with numpy.save") from exc
    if dtype not in _NPY_INPUT_DTYPES:
        raise BadRequest(f"npy dtype {dtype} is not supported; send uint8 (0-255) or float16/32/64 (0-1)")
    if len(shape) not in (3, 4) or 3 not in shape[-3:] or any(d < 0 for d in shape):
        raise BadRequest(f"npy shape {list(shape)} is not HxWx3, 3xHxW, NxHxWx3 or Nx3xHxW")
    count = math.prod(shape)
    n = shape[0] if len(shape) == 4 else 1
    check_count(n, limits)
    if count > n * limits.max_pixels * 3:
        raise BadRequest(f"npy shape {list(shape)}: images over the limit of {limits.max_pixels} pixels "
                         "(SERVE_MAX_IMAGE_PIXELS)")
    offset = buf.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise BadRequest(
            f"npy body holds {len(data) - offset} data bytes; shape {list(shape)} of {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape, order="F" if fortran else "C")


def _channels_last(arr: np.ndarray) -> np.ndarray:
    # Channels-first only when unambiguous: a 3x3x3 image is read as HxWx3.
    if arr.shape[-1] != 3 and arr.shape[-3] == 3:
        return np.moveaxis(arr, -3, -1)
    return arr


def decode_npy(data: bytes, media: MediaType, limits: Limits, cache_pixels: int = 0) -> Plan:
    arr = _channels_last(_npy_array(data, limits))
    if arr.ndim == 3:
        return plan(1, lambda _: check_image(arr, limits, "image"), False, limits, cache_pixels)
    return plan(len(arr), lambda i: check_image(arr[i], limits, f"image {i}"), True, limits, cache_pixels)


def _charset(media: MediaType) -> str:
    charset = media.params.get("charset", "utf-8").lower()
    try:
        _codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(f"charset {charset!r} is unknown; send UTF-8") from None
    return charset


def _utf8(data: bytes, media: MediaType) -> bytes:
    """The body as UTF-8 bytes without a byte-order mark (JSON may start with one; RFC 8259 lets us ignore it)."""
    charset = _charset(media)
    if charset not in _UTF8:
        try:
            data = data.decode(charset).encode("utf-8")
        except UnicodeError as exc:
            raise BadRequest(f"body is not valid {charset}: {describe(exc)}") from exc
    return data[3:] if data.startswith(_codecs.BOM_UTF8) else data


def _loads(text: bytes, where: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"{where}: not valid JSON ({describe(exc)})") from exc


def _instance(value: object, limits: Limits, where: str) -> np.ndarray:
    """One JSON instance: base64 PNG/JPEG as a string or {"b64": ...}, or nested HxWx3 arrays."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        value = value["b64"]
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"{where}: not valid base64 ({describe(exc)})") from exc
        return decode_image_file(raw, limits.max_pixels, where, lambda a: check_image(a, limits, where))
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"{where}: nested lists are not a rectangular HxWx3 array ({describe(exc)})") from exc
        if arr.dtype == np.bool_:
            raise BadRequest(f"{where}: pixels must be numbers, got booleans")
        return check_image(_channels_last(arr) if arr.ndim == 3 else arr, limits, where)
    raise BadRequest(f"{where}: expected a base64 image string, {{\"b64\": ...}} or nested HxWx3 lists")


def decode_json(data: bytes, media: MediaType, limits: Limits, cache_pixels: int = 0) -> Plan:
    doc = _loads(_utf8(data, media), "body")
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise BadRequest('JSON body must be {"instances": [image, ...]}')
    instances = doc["instances"]
    return plan(len(instances), lambda i: _instance(instances[i], limits, f"instance {i}"), True, limits,
                cache_pixels)


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the non-blank lines, found with numpy: no Python object per line."""
    raw = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(raw)]))
    solid = np.concatenate(([0], np.cumsum(~np.isin(raw, _WHITESPACE), dtype=np.int64)))
    keep = solid[ends] > solid[starts]
    return starts[keep], ends[keep]


def decode_jsonlines(data: bytes, media: MediaType, limits: Limits, cache_pixels: int = 0) -> Plan:
    text = _utf8(data, media)
    starts, ends = _line_bounds(text)

    def load(i: int) -> np.ndarray:
        where = f"line {i + 1}"
        return _instance(_loads(text[starts[i]:ends[i]], where), limits, where)

    return plan(len(starts), load, True, limits, cache_pixels)


Decoder = Callable[[bytes, MediaType, Limits, int], Plan]
DECODERS: dict[str, Decoder] = {
    PNG: decode_image,
    JPEG: decode_image,
    NPY: decode_npy,
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
}


def decode(decoder: Decoder, body: bytes, media: MediaType, limits: Limits, cache_pixels: int = 0) -> Plan:
    """Run ``decoder``; anything it raises on client bytes is the client's 400, never a 5xx."""
    try:
        return decoder(body, media, limits, cache_pixels)
    except ServeError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # a decoder gap must not turn garbage input into a server error
        raise BadRequest(f"cannot decode the body as {media.essence} ({describe(exc)})") from exc


def decoder_for(content_type: str | None) -> tuple[Decoder, MediaType]:
    supported = ", ".join(DECODERS)
    if not content_type or not content_type.strip():
        raise UnsupportedMediaType(f"missing Content-Type; send one of: {supported}")
    media = parse_media_type(content_type)
    decoder = DECODERS.get(media.essence)
    if decoder is None:
        raise UnsupportedMediaType(f"Content-Type {media.essence!r} is not supported; send one of: {supported}")
    return decoder, media
