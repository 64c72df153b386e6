"""Pixel encodings of images and normal maps, and reading them from files.

Normals are camera-space unit vectors (x right, y up, z toward the viewer) stored as
RGB = round((n + 1) / 2 * max) with max = 255 (8-bit PNG) or 65535 (16-bit PNG). An all-zero pixel
means "no ground truth here".
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import png  # pypng: Pillow narrows 16-bit RGB PNGs to 8 bits, pypng keeps all 16
from PIL import Image

from model.family import DataFormatError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 (any mode Pillow reads: grey, palette, RGBA, 16-bit...)."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))  # a writable copy: torch.from_numpy needs one
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataFormatError(f"{path}: cannot read image ({exc})") from exc


def read_mask(path: Path) -> np.ndarray:
    """A mask file as HxW bool; non-zero means "ground truth valid here"."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot read mask ({exc})") from exc
    return arr.any(axis=-1) if arr.ndim == 3 else arr != 0


def _png_bit_depth(data: bytes) -> int:
    # IHDR is always the first chunk: signature(8) + length(4) + type(4) + width(4) + height(4) + depth(1)
    if len(data) < 25 or not data.startswith(_PNG_SIGNATURE):
        return 0
    return data[24]


def decode_normals_png(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """PNG bytes to (HxWx3 float32 unit normals, HxW bool valid). Invalid pixels are zero vectors."""
    if _png_bit_depth(data) == 16:
        width, height, rows, info = png.Reader(bytes=data).asDirect()
        planes = info["planes"]
        pixels = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
        maxval = 65535.0
    else:
        with Image.open(io.BytesIO(data)) as img:
            pixels = np.asarray(img.convert("RGB"))
        planes, maxval = 3, 255.0
    if planes < 3:
        raise ValueError(f"a normal map needs 3 channels (RGB), this PNG has {planes}")
    raw = pixels[..., :3]
    valid = raw.any(axis=-1)
    vec = raw.astype(np.float32) * (2.0 / maxval) - 1.0
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    valid &= norm[..., 0] > 0.5  # far from unit length: not a normal, treat as missing
    vec = np.where(valid[..., None], vec / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
    return vec, valid


def read_normals(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        return decode_normals_png(path.read_bytes())
    except (OSError, ValueError, png.Error) as exc:
        raise DataFormatError(f"{path}: cannot read normal map ({exc})") from exc


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
