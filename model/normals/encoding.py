"""Pixel encodings of images and normal maps, and reading them from files.

Normals are camera-space unit vectors (x right, y up, z toward the viewer) stored as
RGB = round((n + 1) / 2 * max) with max = 255 (8-bit PNG) or 65535 (16-bit PNG). An all-zero pixel
(or, in an RGBA normal map, alpha 0) means "no ground truth here". Sizes are checked from the header
before a file is decoded (model/normals/limits.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png  # pypng: Pillow narrows 16-bit RGB PNGs to 8 bits, pypng keeps all 16
from PIL import Image

from model.family import DataFormatError
from model.images import SIXTEEN_BIT_GREY, image_to_rgb8
from model.normals.limits import check_dimensions

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY_MODES = ("1", "L", *SIXTEEN_BIT_GREY)
#: Pillow modes a mask may have (see mask_to_valid).
MASK_MODES = (*_GREY_MODES, "LA", "P", "PA", "RGB", "RGBA")


def _label(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else "in-memory file"


def _decoded(source: object, what: str, decode: Callable[[], np.ndarray]):
    """Run ``decode``; any failure of the file itself becomes a DataFormatError naming it."""
    try:
        return decode()
    except (DataFormatError, MemoryError):
        raise
    except Exception as exc:  # PIL, pypng and zlib raise many types for a damaged or truncated file
        raise DataFormatError(f"{_label(source)}: cannot read {what} ({type(exc).__name__}: {exc})") from exc


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR, or None if ``data`` is not a PNG."""
    # IHDR is always the first chunk: signature(8) length(4) type(4) width(4) height(4) depth(1) colour(1)
    if len(data) < 26 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), data[24], data[25]


def read_rgb(path: Path | BinaryIO) -> np.ndarray:
    """An image file as HxWx3 uint8 (grey, 16-bit grey, palette, RGBA...), size-checked before decoding.

    Pixels are used as stored: an EXIF orientation tag is ignored, since the normal map pairs with the stored
    pixels (serving applies the tag to requests; the data check names a training image whose tag swaps its
    sides).
    """

    def decode() -> np.ndarray:
        with Image.open(path) as img:
            check_dimensions(_label(path), *img.size)
            return image_to_rgb8(img)

    return _decoded(path, "image", decode)


def mask_to_valid(img: Image.Image) -> np.ndarray:
    """HxW bool: a pixel has ground truth when its colour is not black and it is not fully transparent.

    Palette masks are read through their palette (and transparency), so what counts is the colour the
    user drew, never the palette index; an alpha channel never makes a pixel valid by itself.
    """
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    arr = np.asarray(img)
    if img.mode in _GREY_MODES:
        return arr != 0
    if img.mode == "LA":
        return (arr[..., 0] != 0) & (arr[..., 1] != 0)
    if img.mode == "RGB":
        return arr.any(axis=-1)
    if img.mode == "RGBA":
        return arr[..., :3].any(axis=-1) & (arr[..., 3] != 0)
    raise DataFormatError(f"mask mode {img.mode} is not supported; save masks as 8-bit greyscale PNGs "
                          "(0 = no ground truth, 255 = ground truth)")


def read_mask(path: Path | BinaryIO) -> np.ndarray:
    """A mask file as HxW bool (see :func:`mask_to_valid`), size-checked before decoding."""

    def decode() -> np.ndarray:
        with Image.open(path) as img:
            check_dimensions(_label(path), *img.size)
            try:
                return mask_to_valid(img)
            except DataFormatError as exc:
                raise DataFormatError(f"{_label(path)}: {exc}") from None

    return _decoded(path, "mask", decode)


def _png16_pixels(data: bytes) -> np.ndarray:
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    planes = info["planes"]
    out = np.empty((height, width * planes), dtype=np.uint16)  # filled row by row: no list of row copies
    for i, row in enumerate(rows):
        out[i] = row
    return out.reshape(height, width, planes)


def decode_normals_png(data: bytes, name: str = "normal map") -> tuple[np.ndarray, np.ndarray]:
    """PNG bytes to (HxWx3 float32 unit normals, HxW bool valid). Invalid pixels are zero vectors.

    Accepted: 8- or 16-bit RGB or RGBA (alpha 0 = no ground truth) and palette PNGs (read through their
    palette). Greyscale cannot hold a 3-component vector and is refused rather than guessed at.
    """
    header = png_header(data)
    if header is None:
        raise DataFormatError(f"{name}: not a PNG file; normal maps must be 8- or 16-bit RGB PNGs")
    width, height, depth, colour_type = header
    check_dimensions(name, width, height)
    if colour_type in (0, 4):
        raise DataFormatError(
            f"{name}: a greyscale PNG ({depth}-bit), but a normal map needs three channels (x, y, z in R, G, B); "
            "save it as an 8- or 16-bit RGB PNG encoded as the README's 'Dataset format' says")

    def decode() -> tuple[np.ndarray, float]:
        if depth == 16:
            return _png16_pixels(data), 65535.0
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGBA")), 255.0  # a palette through its palette, tRNS as alpha

    pixels, maxval = _decoded(name, "normal map", decode)
    if pixels.shape[-1] < 3:
        raise DataFormatError(f"{name}: a normal map needs 3 channels (RGB), this PNG has {pixels.shape[-1]}")
    raw = pixels[..., :3]
    valid = raw.any(axis=-1)
    if pixels.shape[-1] == 4:
        valid &= pixels[..., 3] != 0
    vec = raw.astype(np.float32) * (2.0 / maxval) - 1.0
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    valid &= norm[..., 0] > 0.5  # far from unit length: not a normal, treat as missing
    vec = np.where(valid[..., None], vec / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
    return vec, valid


def read_normals(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = _decoded(path, "normal map", path.read_bytes)
    return decode_normals_png(data, str(path))


def normals_to_rgb(normals: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 unit normals to the standard 8-bit RGB encoding (invalid pixels black)."""
    rgb = np.clip(np.rint((normals + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if valid is not None:
        rgb[~valid] = 0
    return rgb


def normals_to_png16(normals: np.ndarray, valid: np.ndarray | None = None) -> bytes:
    """HxWx3 unit normals as a 16-bit RGB PNG (for datasets that want more than 8 bits)."""
    enc = np.clip(np.rint((normals + 1.0) * 32767.5), 1, 65535).astype(np.uint16)
    if valid is not None:
        enc[~valid] = 0
    h, w, _ = enc.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=False, bitdepth=16).write(buf, enc.reshape(h, w * 3))
    return buf.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
