"""Writing PNGs of every mode for data tests: pypng for exact bit depths, a raw writer for huge headers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import png
from PIL import Image


def png_bytes(arr: np.ndarray, *, bitdepth: int = 8, alpha: bool = False) -> bytes:
    """A PNG of ``arr`` (HxW grey or HxWxC with C in 2/3/4) at ``bitdepth``, written by pypng."""
    h, w = arr.shape[:2]
    planes = 1 if arr.ndim == 2 else arr.shape[2]
    greyscale = planes in (1, 2)
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=greyscale, alpha=alpha or planes in (2, 4), bitdepth=bitdepth).write(
        buf, arr.reshape(h, w * planes))
    return buf.getvalue()


def palette_png(indices: np.ndarray, palette: list[tuple[int, int, int]], transparent: int | None = None) -> bytes:
    img = Image.fromarray(indices.astype(np.uint8), "P")
    flat = [c for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", **({"transparency": transparent} if transparent is not None else {}))
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def header_only_png(width: int, height: int, bitdepth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose header claims width x height but that holds almost no data (decoding it would fail or
    explode): for checks that must decide from the header alone."""
    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def jpeg_bytes(rgb: np.ndarray, orientation: int | None = None) -> bytes:
    img = Image.fromarray(rgb)
    buf = io.BytesIO()
    if orientation is None:
        img.save(buf, format="JPEG", quality=95)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()
