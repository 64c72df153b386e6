"""A corpus of broken datasets: each case damages a small good channel in one way a user's data can be bad.

``Case.apply(channel)`` edits a channel written by ``good_channel`` and returns the file (relative to the
channel) that the failure must name. Shared by the in-process corpus test and the container subset.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.normals.encoding import encode_png, normals_to_rgb
from model.normals.limits import MAX_ASPECT
from model.normals.synthetic import write_dataset
from tests.support_png import header_only_png, jpeg_bytes, palette_png, png_bytes

SIZE = 40
STEM = "scene_00001"


def good_channel(root: Path, count: int = 4, seed: int = 1) -> Path:
    write_dataset(root, count=count, size=SIZE, seed=seed)
    return root


def _rgb(h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _facing(h: int = SIZE, w: int = SIZE) -> bytes:
    return encode_png(normals_to_rgb(np.broadcast_to(np.float32([0, 0, 1]), (h, w, 3)).copy()))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def short_pixel_data_png(width: int = SIZE, height: int = SIZE) -> bytes:
    """Structurally complete (every chunk, CRCs, IEND) but its pixel data stops early: only decoding finds it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 50))
            + _chunk(b"IEND", b""))


def _write(rel: str, data: bytes, named: str | None = None) -> Callable[[Path], str]:
    def apply(channel: Path) -> str:
        (channel / rel).parent.mkdir(parents=True, exist_ok=True)
        (channel / rel).write_bytes(data)
        return named or rel
    return apply


def _cut(rel: str) -> Callable[[Path], str]:
    def apply(channel: Path) -> str:
        data = (channel / rel).read_bytes()
        (channel / rel).write_bytes(data[: len(data) // 2])
        return rel
    return apply


def _replace_image(ext: str, data: bytes) -> Callable[[Path], str]:
    def apply(channel: Path) -> str:
        (channel / "images" / f"{STEM}.png").unlink()
        (channel / "images" / f"{STEM}{ext}").write_bytes(data)
        return f"images/{STEM}{ext}"
    return apply


def _remove(rel: str, named: str) -> Callable[[Path], str]:
    def apply(channel: Path) -> str:
        (channel / rel).unlink()
        return named
    return apply


def _both(image: bytes, normals: bytes, named: str) -> Callable[[Path], str]:
    def apply(channel: Path) -> str:
        (channel / "images" / f"{STEM}.png").write_bytes(image)
        (channel / "normals" / f"{STEM}.png").write_bytes(normals)
        (channel / "masks" / f"{STEM}.png").unlink()
        return named
    return apply


def _gif() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, format="GIF")
    return buf.getvalue()


def _exif_rotated(channel: Path) -> str:
    # stored 40 wide x 30 high, EXIF orientation 6 (shown rotated: 30 x 40); the normal map follows the view
    (channel / "images" / f"{STEM}.png").unlink()
    (channel / "images" / f"{STEM}.jpg").write_bytes(jpeg_bytes(_rgb(30, 40), orientation=6))
    (channel / "normals" / f"{STEM}.png").write_bytes(_facing(40, 30))
    (channel / "masks" / f"{STEM}.png").unlink()
    return f"normals/{STEM}.png"


@dataclass(frozen=True)
class Case:
    name: str
    apply: Callable[[Path], str]
    says: str  # a regular expression the message must match


IMG, NRM, MSK = f"images/{STEM}.png", f"normals/{STEM}.png", f"masks/{STEM}.png"
TALL = MAX_ASPECT * 2 + 2

CASES = [
    Case("zero-byte image", _write(IMG, b""), "empty"),
    Case("zero-byte normal map", _write(NRM, b""), "empty"),
    Case("zero-byte mask", _write(MSK, b""), "empty"),
    Case("truncated image", _cut(IMG), "truncated"),
    Case("truncated normal map", _cut(NRM), "truncated"),
    Case("truncated mask", _cut(MSK), "truncated"),
    Case("truncated JPEG image", _replace_image(".jpg", jpeg_bytes(_rgb())[:900]), "truncated"),
    Case("text file as image", _write(IMG, b"name,value\n1,2\n"), "not a readable"),
    Case("GIF named .png as image", _write(IMG, _gif()), "GIF"),
    Case("text file as normal map", _write(NRM, b"hello"), "not a PNG"),
    Case("JPEG named .png as normal map", _write(NRM, jpeg_bytes(_rgb())), "not a PNG"),
    Case("8-bit greyscale normal map", _write(NRM, png_bytes(np.full((SIZE, SIZE), 128, np.uint8))), "greyscale"),
    Case("16-bit greyscale normal map", _write(NRM, png_bytes(np.full((SIZE, SIZE), 9, np.uint16), bitdepth=16)),
         "greyscale"),
    Case("JPEG named .png as mask", _write(MSK, jpeg_bytes(_rgb())), "JPEG"),
    Case("normal map of another size", _write(NRM, _facing(SIZE, SIZE + 8)), "normal map is 48x40 but its image"),
    Case("mask of another size", _write(MSK, encode_png(np.full((SIZE - 4, SIZE), 255, np.uint8))),
         "mask is 40x36 but its image"),
    Case("EXIF-rotated JPEG", _exif_rotated, "EXIF orientation"),
    Case("image without a normal map", _remove(NRM, STEM), "images without a normal map"),
    Case("normal map without an image", _remove(IMG, STEM), "normal maps without an image"),
    Case("mask without an image", _write("masks/lonely.png", encode_png(np.ones((4, 4), np.uint8)), "lonely"),
         "masks without an image"),
    Case("huge image", _both(header_only_png(6000, 6000), _facing(), IMG), "over the limit"),
    Case("huge 16-bit normal map", _write(NRM, header_only_png(6000, 6000, bitdepth=16)), "over the limit"),
    Case("extreme aspect ratio", _both(encode_png(_rgb(2, 2 * TALL)), _facing(2, 2 * TALL), IMG), "aspect ratio"),
    Case("palette mask of another size", _write(MSK, palette_png(np.zeros((8, 8)), [(255, 255, 255)])),
         "mask is 8x8"),
    Case("RGBA mask of another size", _write(MSK, png_bytes(np.full((8, 8, 4), 255, np.uint8))), "mask is 8x8"),
]

#: Files whose header is fine but whose pixels cannot be decoded: found only when the sample is read.
DECODE_ONLY = Case("pixel data cut short", _write(IMG, short_pixel_data_png()), "cannot read image")


def all_mask_modes(channel: Path) -> None:
    """Give the channel's samples masks in every supported mode (all mark the left half valid)."""
    left = np.zeros((SIZE, SIZE), bool)
    left[:, : SIZE // 2] = True
    grey = (left * 255).astype(np.uint8)
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    masks = [
        png_bytes(left.astype(np.uint8), bitdepth=1),
        png_bytes(left.astype(np.uint16) * 1000, bitdepth=16),
        png_bytes(np.stack([grey, alpha], -1)),
        png_bytes(np.stack([grey, grey, grey, alpha], -1)),
        palette_png(np.where(left, 0, 1), [(255, 255, 255), (0, 0, 0)]),
        png_bytes(np.stack([grey, grey * 0, grey * 0], -1)),
    ]
    stems = sorted(p.stem for p in (channel / "images").iterdir())
    for i, data in enumerate(masks):
        (channel / "masks" / f"{stems[i % len(stems)]}.png").write_bytes(data)
