"""PNG and JPEG bodies to pixel arrays, without trusting the file.

- The canvas size is checked from the header, before any pixel is decoded (a 20 KB file can claim 4 G pixels).
- A PNG whose compressed data ends before the rows its header declares is rejected: Pillow fills the missing
  rows with zeros and reports no error when the zlib stream itself is complete.
- JPEG/PNG EXIF orientation is applied, so a portrait photo is predicted upright, as viewers show it.
- 16-bit greyscale is scaled to [0, 1] (65535 -> 1.0) rather than clipped to 8 bits.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

from serve.errors import BadRequest

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Channels per PNG colour type (greyscale, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_CHUNK = 1 << 20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe(exc: BaseException) -> str:
    """``Kind: message`` for a client, without object addresses (``<_io.BytesIO object at 0x7f...>``)."""
    return f"{type(exc).__name__}: {_ADDRESS.sub('', str(exc))}"


def _png_row_bytes(width: int, height: int, bits: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines (one filter byte per row) that a PNG of this header must inflate to."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-(w * bits) // 8))
    return total


def check_png_complete(data: bytes, where: str) -> None:
    """BadRequest unless the PNG's image data inflates to every row its header declares."""
    pos, idat, header = len(_PNG_SIGNATURE), zlib.decompressobj(), None
    produced, expected = 0, 0
    while pos + 8 <= len(data) and not (header and produced >= expected):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR" and len(chunk) >= 13:
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk[:13])
            header = (width, height, depth * _PNG_CHANNELS.get(colour, 4), interlace == 1)
            expected = _png_row_bytes(*header)
        elif kind == b"IDAT":
            # Inflate in bounded steps and count: the output is never held (a bomb costs time, not memory).
            buf = chunk
            while buf and produced < expected:
                produced += len(idat.decompress(buf, _INFLATE_CHUNK))
                buf = idat.unconsumed_tail
        elif kind == b"IEND":
            break
    if header is None:
        return  # Pillow itself rejects a PNG without a header
    if produced < expected:
        raise BadRequest(f"{where}: PNG is truncated: its data holds {produced} of the {expected} bytes its "
                         f"{header[0]}x{header[1]} header declares; send the whole file")


def _to_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(img, dtype=np.float32) / 65535.0  # 16-bit grey: scale, never clip to 8 bits
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def decode_image_file(data: bytes, max_pixels: int, where: str, check: Callable[[np.ndarray], np.ndarray]
                      ) -> np.ndarray:
    """One PNG/JPEG as a checked HxWx3 array (uint8, or float32 in [0, 1] for 16-bit grey)."""
    if not data:
        raise BadRequest(f"{where}: empty body")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
            w, h = img.size
            # Checked before decoding pixels, so a small file claiming a huge canvas costs nothing.
            if w * h > max_pixels:
                raise BadRequest(
                    f"{where}: {h}x{w} = {h * w} pixels is over the limit of {max_pixels} "
                    "(SERVE_MAX_IMAGE_PIXELS); downscale the image or raise the limit"
                )
            if img.format == "PNG":
                check_png_complete(data, where)
            upright = ImageOps.exif_transpose(img) or img
            arr = _to_array(upright)
    except BadRequest:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...) on bad input
        raise BadRequest(f"{where}: not a readable PNG or JPEG image ({describe(exc)})") from exc
    return check(arr)
