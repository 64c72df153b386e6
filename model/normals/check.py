"""The data check before training: every file of every sample, from headers, without decoding pixels.

What it finds (each problem names the file, says what is wrong and how to fix it): empty, truncated or
non-image files, normal maps that are not RGB PNGs, unsupported mask modes, images/normal maps/masks of
different sizes (naming an EXIF rotation when that explains it), and sizes over model/normals/limits.py.
Damage inside compressed pixel data can only show when a sample is decoded during training; that still
fails the job naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from model.family import DataFormatError
from model.normals.data import Sample
from model.normals.encoding import MASK_MODES, png_header
from model.normals.limits import check_dimensions

_EXIF_ORIENTATION = 0x0112
_SWAPPED = (5, 6, 7, 8)  # EXIF orientations that display the stored image rotated by 90 degrees
_JPEG_TAIL = 4096


@dataclass(frozen=True)
class _Header:
    size: tuple[int, int]  # (width, height) as stored
    orientation: int = 1


class _Problem(Exception):
    pass


def _png_truncation(path: Path) -> str | None:
    """Walk the PNG's chunk headers (no decompression): a file cut short never reaches IEND."""
    with path.open("rb") as fh:
        fh.seek(8)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return "is truncated (it ends before the PNG's final IEND chunk): re-export or re-upload it"
            if head[4:8] == b"IEND":
                return None
            fh.seek(int.from_bytes(head[:4], "big") + 4, 1)  # chunk data + CRC


def _jpeg_truncation(path: Path) -> str | None:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - _JPEG_TAIL))
        if b"\xff\xd9" in fh.read():
            return None
    try:  # no end marker near the end: trailing data (e.g. a motion photo) or a cut file; decode to tell
        with Image.open(path) as img:
            img.load()
    except Exception as exc:
        return f"is truncated or damaged ({type(exc).__name__}: {exc}): re-export or re-upload it"
    return None


def _open(path: Path, role: str, formats: tuple[str, ...]) -> _Header:
    try:
        if path.stat().st_size == 0:
            raise _Problem("is empty (0 bytes): re-upload it, or remove this sample's files")
        with Image.open(path) as img:
            if img.format not in formats:
                raise _Problem(f"is a {img.format} file; {role}s must be {' or '.join(formats)}")
            size, mode, kind = img.size, img.mode, img.format
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if kind == "JPEG" else 1
    except _Problem:
        raise
    except Exception as exc:  # not an image at all, or a damaged header
        raise _Problem(f"is not a readable {' or '.join(formats)} file ({type(exc).__name__}: {exc}); "
                       "replace it with a valid image, or remove this sample's files") from None
    try:
        check_dimensions(path, *size)
    except DataFormatError as exc:
        raise _Problem(str(exc).removeprefix(f"{path}: ")) from None
    if role == "mask" and mode not in MASK_MODES:
        raise _Problem(f"is a mask in mode {mode}; save masks as 8-bit greyscale PNGs (0 = no ground truth)")
    cut = _jpeg_truncation(path) if kind == "JPEG" else _png_truncation(path)
    if cut:
        raise _Problem(cut)
    return _Header(size, orientation)


def _open_normals(path: Path) -> _Header:
    with path.open("rb") as fh:
        head = fh.read(33)
    if not head:
        raise _Problem("is empty (0 bytes): re-upload it, or remove this sample's files")
    header = png_header(head)
    if header is None:
        raise _Problem("is not a PNG file; normal maps must be 8- or 16-bit RGB PNGs")
    width, height, depth, colour_type = header
    if colour_type in (0, 4):
        raise _Problem(f"is a greyscale PNG ({depth}-bit), but a normal map needs three channels (x, y, z in "
                       "R, G, B); save it as an 8- or 16-bit RGB PNG")
    try:
        check_dimensions(path, width, height)
    except DataFormatError as exc:
        raise _Problem(str(exc).removeprefix(f"{path}: ")) from None
    cut = _png_truncation(path)
    if cut:
        raise _Problem(cut)
    return _Header((width, height))


def _size_problem(sample: Sample, image: _Header, other: _Header, what: str) -> str | None:
    if other.size == image.size:
        return None
    (iw, ih), (ow, oh) = image.size, other.size
    text = f"{what} is {ow}x{oh} but its image {sample.image.name} is {iw}x{ih}"
    if image.orientation in _SWAPPED and other.size == (ih, iw):
        return (f"{text} as stored; the image only looks {ih}x{iw} because of its EXIF orientation tag "
                f"({image.orientation}), which training ignores (serving applies it to requests, so the model "
                "should learn upright pixels): save the image with the rotation applied (e.g. PIL's "
                "ImageOps.exif_transpose, or `exiftran -ai`)")
    return f"{text}: every image, normal map and mask of a sample must have the same size"


def check_sample(sample: Sample) -> list[str]:
    """Every problem of one sample, each as 'FILE: what is wrong; how to fix it'."""
    problems: list[str] = []
    headers: dict[str, _Header] = {}
    paths = {"image": sample.image, "normals": sample.normals, "mask": sample.mask}
    for role, opener in (
        ("image", lambda p: _open(p, "image", ("PNG", "JPEG"))),
        ("normals", _open_normals),
        ("mask", lambda p: _open(p, "mask", ("PNG",))),
    ):
        path = paths[role]
        if path is None:
            continue
        try:
            headers[role] = opener(path)
        except _Problem as exc:
            problems.append(f"{path}: {exc}")
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc})")
    if "image" in headers:
        for role, what in (("normals", "the normal map"), ("mask", "the mask")):
            if role in headers:
                mismatch = _size_problem(sample, headers["image"], headers[role], what)
                if mismatch:
                    problems.append(f"{paths[role]}: {mismatch}")
    return problems


def check_samples(samples: Iterable[Sample], threads: int = 16) -> list[str]:
    """Problems of all ``samples`` in their order; threads overlap the reads (FastFile streams from S3)."""
    todo: Sequence[Sample] = [s for s in samples if isinstance(s, Sample)]
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(todo)))) as pool:
        return [p for found in pool.map(check_sample, todo) for p in found]
