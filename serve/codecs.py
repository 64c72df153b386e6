"""Request and response bodies: content-type decode/encode through lookup tables, and Accept negotiation.

Images come out of a decoder as HxWx3 arrays, uint8 or float32 in [0, 1], already checked for shape, size
and finiteness, so the predictor never sees client garbage. Predictions go into an encoder as HxWx3
float32 arrays (unit normals).
"""

from __future__ import annotations

import base64
import binascii
import codecs as _codecs
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from werkzeug.http import parse_options_header

from serve.errors import BadRequest, NotAcceptable, ServeError, UnsupportedMediaType

PNG, JPEG, NPY, JSON, JSONLINES = "image/png", "image/jpeg", "application/x-npy", "application/json", (
    "application/jsonlines"
)
#: Spellings clients use for the same types.
ALIASES = {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "application/npy": NPY,
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/json-lines": JSONLINES,
    "application/x-ndjson": JSONLINES,
}
NPY_DTYPES = {"float32": np.float32, "float16": np.float16}
_NPY_INPUT_DTYPES = {np.dtype(np.uint8), np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}
#: A float pixel may stray this far outside [0, 1] (rounding in the client's own conversion).
_FLOAT_TOLERANCE = 1e-3
#: Rounding of JSON floats: 1e-4 on a unit vector is ~0.006 degrees, far below the model's error.
_JSON_DECIMALS = 4


@dataclass(frozen=True)
class MediaType:
    essence: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.essence + "".join(f"; {k}={v}" for k, v in self.params.items() if k != "q")


def parse_media_type(value: str) -> MediaType:
    """``type/subtype; key=value`` to a MediaType with lower-case essence and keys, aliases resolved."""
    essence, params = parse_options_header(value)
    essence = essence.strip().lower()
    return MediaType(ALIASES.get(essence, essence), {k.lower(): v for k, v in params.items()})


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_images: int


@dataclass(frozen=True)
class Decoded:
    images: list[np.ndarray]
    #: The request was a batch (npy with a leading N, JSON instances, JSON lines): answer with a batch.
    batched: bool


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


def _check_count(n: int, limits: Limits) -> None:
    if n < 1:
        raise BadRequest("the request holds no images")
    if n > limits.max_images:
        raise BadRequest(f"{n} images in one request is over the limit of {limits.max_images} (SERVE_MAX_IMAGES)")


# -- decoders -------------------------------------------------------------------------------------------


def _decode_image_bytes(data: bytes, limits: Limits, where: str) -> np.ndarray:
    if not data:
        raise BadRequest(f"{where}: empty body")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
            w, h = img.size
            # Checked before decoding pixels, so a small file claiming a huge canvas costs nothing.
            if w * h > limits.max_pixels:
                raise BadRequest(
                    f"{where}: {h}x{w} = {h * w} pixels is over the limit of {limits.max_pixels} "
                    "(SERVE_MAX_IMAGE_PIXELS); downscale the image or raise the limit"
                )
            arr = np.asarray(img.convert("RGB"))
    except BadRequest:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on bad input
        raise BadRequest(f"{where}: not a readable PNG or JPEG image ({type(exc).__name__}: {exc})") from exc
    return check_image(arr, limits, where)


def decode_image(data: bytes, media: MediaType, limits: Limits) -> Decoded:
    return Decoded([_decode_image_bytes(data, limits, "body")], batched=False)


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
        raise BadRequest(f"body is not an .npy file ({exc}); write it with numpy.save") from exc
    if dtype not in _NPY_INPUT_DTYPES:
        raise BadRequest(f"npy dtype {dtype} is not supported; send uint8 (0-255) or float16/32/64 (0-1)")
    if len(shape) not in (3, 4) or 3 not in shape[-3:] or any(d < 0 for d in shape):
        raise BadRequest(f"npy shape {list(shape)} is not HxWx3, 3xHxW, NxHxWx3 or Nx3xHxW")
    count = math.prod(shape)
    n = shape[0] if len(shape) == 4 else 1
    _check_count(n, limits)
    if count > n * limits.max_pixels * 3:
        raise BadRequest(f"npy shape {list(shape)}: images over the limit of {limits.max_pixels} pixels")
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


def decode_npy(data: bytes, media: MediaType, limits: Limits) -> Decoded:
    arr = _channels_last(_npy_array(data, limits))
    if arr.ndim == 3:
        return Decoded([check_image(arr, limits, "image")], batched=False)
    return Decoded([check_image(a, limits, f"image {i}") for i, a in enumerate(arr)], batched=True)


def _text(data: bytes, media: MediaType) -> str:
    charset = media.params.get("charset", "utf-8")
    try:
        _codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(f"charset {charset!r} is unknown; send UTF-8") from None
    try:
        return data.decode(charset)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid {charset}: {exc}") from exc


def _instance(value: object, limits: Limits, where: str) -> np.ndarray:
    """One JSON instance: base64 PNG/JPEG as a string or {"b64": ...}, or nested HxWx3 arrays."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        value = value["b64"]
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"{where}: not valid base64 ({exc})") from exc
        return _decode_image_bytes(raw, limits, where)
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"{where}: nested lists are not a rectangular HxWx3 array ({exc})") from exc
        if arr.dtype == np.bool_:
            raise BadRequest(f"{where}: pixels must be numbers, got booleans")
        return check_image(_channels_last(arr) if arr.ndim == 3 else arr, limits, where)
    raise BadRequest(f"{where}: expected a base64 image string, {{\"b64\": ...}} or nested HxWx3 lists")


def _loads(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"{where}: not valid JSON ({exc})") from exc


def decode_json(data: bytes, media: MediaType, limits: Limits) -> Decoded:
    doc = _loads(_text(data, media), "body")
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise BadRequest('JSON body must be {"instances": [image, ...]}')
    instances = doc["instances"]
    _check_count(len(instances), limits)
    return Decoded([_instance(v, limits, f"instance {i}") for i, v in enumerate(instances)], batched=True)


def decode_jsonlines(data: bytes, media: MediaType, limits: Limits) -> Decoded:
    lines = [line for line in _text(data, media).splitlines() if line.strip()]
    _check_count(len(lines), limits)
    images = [_instance(_loads(line, f"line {i + 1}"), limits, f"line {i + 1}") for i, line in enumerate(lines)]
    return Decoded(images, batched=True)


Decoder = Callable[[bytes, MediaType, Limits], Decoded]
DECODERS: dict[str, Decoder] = {
    PNG: decode_image,
    JPEG: decode_image,
    NPY: decode_npy,
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
}


def decode(decoder: Decoder, body: bytes, media: MediaType, limits: Limits) -> Decoded:
    """Run ``decoder``; anything it raises on client bytes is the client's 400, never a 5xx."""
    try:
        return decoder(body, media, limits)
    except ServeError:
        raise
    except Exception as exc:  # a decoder gap must not turn garbage input into a server error
        raise BadRequest(f"cannot decode the body as {media.essence} ({type(exc).__name__}: {exc})") from exc


def decoder_for(content_type: str | None) -> tuple[Decoder, MediaType]:
    supported = ", ".join(DECODERS)
    if not content_type or not content_type.strip():
        raise UnsupportedMediaType(f"missing Content-Type; send one of: {supported}")
    media = parse_media_type(content_type)
    decoder = DECODERS.get(media.essence)
    if decoder is None:
        raise UnsupportedMediaType(f"Content-Type {media.essence!r} is not supported; send one of: {supported}")
    return decoder, media


# -- encoders -------------------------------------------------------------------------------------------

ToImage = Callable[[np.ndarray], np.ndarray]


def _record(pred: np.ndarray) -> dict[str, object]:
    return {"shape": list(pred.shape), "normals": np.round(pred.astype(np.float64), _JSON_DECIMALS).tolist()}


def encode_json(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage) -> bytes:
    doc = {"predictions": [_record(p) for p in preds]} if batched else _record(preds[0])
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_jsonlines(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage) -> bytes:
    return b"".join(json.dumps(_record(p), separators=(",", ":")).encode() + b"\n" for p in preds)


def encode_npy(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage) -> bytes:
    dtype = NPY_DTYPES[media.params.get("dtype", "float32").lower()]
    arr = np.stack(preds) if batched else preds[0]
    buf = io.BytesIO()
    np.save(buf, arr.astype(dtype, copy=False), allow_pickle=False)
    return buf.getvalue()


def encode_png(preds: Sequence[np.ndarray], batched: bool, media: MediaType, to_image: ToImage) -> bytes:
    buf = io.BytesIO()
    # Level 1: several times faster than the default for ~10% larger files; the response is transient.
    Image.fromarray(to_image(preds[0])).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


Encoder = Callable[[Sequence[np.ndarray], bool, MediaType, ToImage], bytes]
#: Response types in the order wildcards prefer them (``application/*`` -> JSON).
ENCODERS: dict[str, Encoder] = {
    JSON: encode_json,
    NPY: encode_npy,
    PNG: encode_png,
    JSONLINES: encode_jsonlines,
}


# -- Accept negotiation ---------------------------------------------------------------------------------


def parse_accept(header: str | None) -> list[MediaType] | None:
    """Accept entries best first (q-values honoured, q=0 dropped); None when the header is missing or empty."""
    if header is None or not header.strip():
        return None
    entries: list[tuple[float, int, MediaType]] = []
    for i, part in enumerate(header.split(",")):
        if not part.strip():
            continue
        media = parse_media_type(part)
        try:
            q = float(media.params.get("q", "1"))
        except ValueError:
            continue
        if q > 0 and "/" in media.essence:
            entries.append((-q, i, media))
    return [m for _, _, m in sorted(entries, key=lambda e: (e[0], e[1]))]


def _unsatisfiable(media: MediaType, count: int, same_shape: bool) -> str | None:
    """Why ``media`` cannot hold this response, or None if it can."""
    if media.essence == PNG and count != 1:
        return f"image/png holds one image, the response has {count}"
    if media.essence == NPY:
        dtype = media.params.get("dtype", "float32").lower()
        if dtype not in NPY_DTYPES:
            return f"application/x-npy dtype={dtype!r} is not one of {sorted(NPY_DTYPES)}"
        if not same_shape:
            return "application/x-npy cannot hold a batch of differently sized images"
    return None


def negotiate(
    accept: list[MediaType] | None, default: MediaType, *, count: int, same_shape: bool
) -> MediaType:
    """The response type: the client's most preferred type that can hold ``count`` predictions."""
    wanted = [default] if accept is None else accept
    reasons: list[str] = []
    for media in wanted:
        if media.essence == "*/*":
            candidates = [default]
        elif media.essence.endswith("/*"):
            major = media.essence.split("/")[0] + "/"
            candidates = [MediaType(e) for e in ENCODERS if e.startswith(major)]
        elif media.essence in ENCODERS:
            candidates = [media]
        else:
            continue
        for candidate in candidates:
            reason = _unsatisfiable(candidate, count, same_shape)
            if reason is None:
                return candidate
            reasons.append(reason)
    why = f" ({'; '.join(reasons)})" if reasons else ""
    raise NotAcceptable(f"cannot answer in any type the Accept header allows{why}; supported: {', '.join(ENCODERS)}")


def check_acceptable(accept: list[MediaType] | None) -> None:
    """Fail before decoding when the Accept header names nothing we could ever produce."""
    if accept is None:
        return
    for media in accept:
        if media.essence == "*/*" or media.essence in ENCODERS:
            return
        if media.essence.endswith("/*") and any(e.startswith(media.essence[:-1]) for e in ENCODERS):
            return
    raise NotAcceptable(f"the Accept header names no type we produce; supported: {', '.join(ENCODERS)}")
