"""A corpus of hostile, malformed, oversized and odd requests, generated so each one is distinct.

``corpus(max_side)`` yields ``(name, body, headers)``. ``max_side`` is the side of the largest image the
server under test allows (its SERVE_MAX_IMAGE_PIXELS is ``max_side**2``), so "largest allowed" and "one
pixel too many" requests follow the server's setting.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image

Request = tuple[str, bytes, dict[str, str]]

TYPES = ["image/png", "image/jpeg", "application/x-npy", "application/json", "application/jsonlines"]
ODD_TYPES = ["", "text/csv", "image/gif", "application/octet-stream", "multipart/form-data; boundary=x",
             "application/json; charset=klingon", "IMAGE/PNG", "image/png; q=0", "application/x-npy; dtype=int8",
             "application/*", "*/*", "a/b; c", "application/json; charset=utf-16", "image/jpg",
             "application/x-ndjson", ";;;", "image/png, image/jpeg"]
ACCEPTS = ["*/*", "image/png", "application/x-npy", "application/x-npy; dtype=float16", "application/x-npy; dtype=int8",
           "application/json", "application/jsonlines", "text/html", "image/*", "application/*;q=0", "",
           "image/png;q=0.1, application/json;q=0.9", "nonsense"]


def _png(arr: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **options)
    return buf.getvalue()


def _jpeg(arr: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **options)
    return buf.getvalue()


def _npy(arr: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **options)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width: int, height: int, data: bytes, colour: int = 2) -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(data, 9)) + _chunk(b"IEND", b"")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def bombs(max_side: int) -> Iterator[Request]:
    png = {"Content-Type": "image/png", "Accept": "image/png"}
    for side in (max_side + 1, 10_000, 65_535, 1_000_000):
        yield f"png claims {side}x{side}", _png_claiming(side, side, b"\x00" * 1000), png
    # zlib bomb: the header says 64x64, the data inflates to 64 MB of zeros
    yield "png zlib bomb", _png_claiming(64, 64, b"\x00" * (64 << 20)), png
    yield "png zlib bomb, grey", _png_claiming(64, 64, b"\x00" * (16 << 20), colour=0), png
    flat = np.zeros((max_side, max_side, 3), np.uint8)
    for accept in ("image/png", "application/json", "application/x-npy", "application/x-npy; dtype=float16"):
        yield f"largest flat png, accept {accept}", _png(flat), {"Content-Type": "image/png", "Accept": accept}
    yield "largest flat png in base64 json", json.dumps({"instances": [_b64(_png(flat))]}).encode(), {
        "Content-Type": "application/json"}
    yield "64 largest flat pngs in base64 json", json.dumps({"instances": [_b64(_png(flat))] * 64}).encode(), {
        "Content-Type": "application/json", "Accept": "application/x-npy"}
    yield "npy header claims 1e12 pixels", _npy(np.zeros((2, 2, 3), np.uint8)).replace(
        b"(2, 2, 3)", b"(1000000, 1000000, 3)"), {"Content-Type": "application/x-npy"}
    yield "npy header claims 1e6 images", _npy(np.zeros((1, 2, 2, 3), np.uint8)).replace(
        b"(1, 2, 2, 3)", b"(1000000, 2, 2, 3)"), {"Content-Type": "application/x-npy"}
    sof_8x8, sof_65000 = b"\xff\xc0\x00\x11\x08\x00\x08\x00\x08", b"\xff\xc0\x00\x11\x08\xfd\xe8\xfd\xe8"
    yield "jpeg claims 65000x65000", _jpeg(np.zeros((8, 8, 3), np.uint8)).replace(sof_8x8, sof_65000), {
        "Content-Type": "image/jpeg"}


def many_images() -> Iterator[Request]:
    tiny = [[[0, 0, 0]]]
    for n in (65, 1000, 20_000):
        yield f"json {n} tiny instances", json.dumps({"instances": [tiny] * n}).encode(), {
            "Content-Type": "application/json"}
        yield f"jsonlines {n} tiny lines", (json.dumps(tiny) + "\n").encode() * n, {
            "Content-Type": "application/jsonlines"}
    yield "npy 5000 1x1 images", _npy(np.zeros((5000, 1, 1, 3), np.uint8)), {"Content-Type": "application/x-npy"}
    yield "jsonlines 100000 blank lines", b"\n" * 100_000, {"Content-Type": "application/jsonlines"}


def deep_and_wrong_json() -> Iterator[Request]:
    js = {"Content-Type": "application/json"}
    for depth in (100, 1000, 100_000):
        yield f"json nested {depth}", b"[" * depth + b"]" * depth, js
        yield f"instances nested {depth}", b'{"instances": ' + b"[" * depth + b"]" * depth + b"}", js
    wrong = [None, True, 1, 1.5, "x", [], {}, {"b64": 1}, {"b64": "!!"}, {"b64": "aGVsbG8="}, [1, 2, 3], [[1, 2, 3]],
             [[[1, 2]]], [[[1, 2, 3, 4]]], [[["a", "b", "c"]]], [[[None, 0, 0]]], [[[1e308, 0, 0]]], [[[-1, 0, 0]]],
             [[[256, 0, 0]]], [[[2**70, 0, 0]]], [[[0.5, 0.5, 1.5]]], [[[True, False, True]]], [[[[0, 0, 0]]]],
             [[[0, 0, 0]], [[0, 0]]], "data:image/png;base64,AAAA", _b64(b"GIF89a" + bytes(20)), _b64(b"")]
    for i, value in enumerate(wrong):
        yield f"instance of wrong kind {i}: {json.dumps(value)[:30]}", json.dumps({"instances": [value]}).encode(), js
        yield f"jsonline of wrong kind {i}", json.dumps(value).encode() + b"\n", {
            "Content-Type": "application/jsonlines"}
    for i, doc in enumerate([b"", b"{", b"null", b"[]", b'{"instances": null}', b'{"instance": []}', b'"x"',
                             b'{"instances": [], "x": 1}', b'{"instances": {"a": 1}}', b"NaN", b"\x00" * 100]):
        yield f"bad json document {i}", doc, js


def bad_encodings() -> Iterator[Request]:
    doc = json.dumps({"instances": [[[[0, 0, 0]]]]})
    for charset, body in [("utf-8", b"\xff\xfe" + doc.encode()), ("utf-16", doc.encode()), ("latin-1", doc.encode()),
                          ("utf-8", b"\xef\xbb\xbf" + doc.encode()), ("utf-16", doc.encode("utf-16")),
                          ("utf-32", doc.encode("utf-16")), ("ascii", "é".encode() + doc.encode()),
                          ("utf-8", doc.encode()[:-1] + b"\xc3"), ("utf-7", doc.encode()), ("x-unknown", b"{}")]:
        for kind in ("application/json", "application/jsonlines"):
            yield f"{kind} as {charset} ({body[:6]!r})", body, {"Content-Type": f"{kind}; charset={charset}"}
    b64 = _b64(_png(np.zeros((4, 4, 3), np.uint8)))
    yield "base64 with newlines", json.dumps({"instances": [b64[:8] + "\n" + b64[8:]]}).encode(), {
        "Content-Type": "application/json"}


def truncated_and_damaged() -> Iterator[Request]:
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    files = {"image/png": _png(img), "image/jpeg": _jpeg(img), "application/x-npy": _npy(img),
             "application/json": json.dumps({"instances": [_b64(_png(img))]}).encode(),
             "application/jsonlines": (json.dumps(img.tolist()) + "\n").encode()}
    for kind, body in files.items():
        for frac in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            yield f"{kind} truncated to {frac:.0%}", body[: int(len(body) * frac)], {"Content-Type": kind}
        damaged = bytearray(body)
        for k in range(0, len(damaged), max(1, len(damaged) // 7)):
            damaged[k] ^= 0x5A
        yield f"{kind} with flipped bytes", bytes(damaged), {"Content-Type": kind}
    rows = b"".join(b"\x00" + bytes(48 * 3) for _ in range(40))
    yield "png with rows missing from a complete zlib stream", _png_claiming(48, 40, rows[: len(rows) // 3]), {
        "Content-Type": "image/png"}


def odd_but_valid(max_side: int) -> Iterator[Request]:
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    grey16 = (rng.integers(0, 65536, (24, 32))).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    bodies = {
        "grey png": (_png(rgb[..., 0]), "image/png"),
        "16-bit grey png": (_png(grey16), "image/png"),
        "rgba png": (_png(np.dstack([rgb, rgb[..., :1]])), "image/png"),
        "palette png": (_png_palette(rgb), "image/png"),
        "exif-rotated jpeg": (_jpeg(rgb, exif=exif), "image/jpeg"),
        "progressive jpeg": (_jpeg(rgb, progressive=True), "image/jpeg"),
        "grey jpeg": (_jpeg(rgb[..., 0]), "image/jpeg"),
        "1x1 png": (_png(rgb[:1, :1]), "image/png"),
        "1 x max png": (_png(np.zeros((1, max_side), np.uint8)), "image/png"),
        "npy float16": (_npy(rgb.astype(np.float16) / 255), "application/x-npy"),
        "npy float64 channels first": (_npy(np.moveaxis(rgb, -1, 0) / 255.0), "application/x-npy"),
        "npy fortran order": (_npy(np.asfortranarray(rgb)), "application/x-npy"),
        "npy 3x3x3": (_npy(rgb[:3, :3]), "application/x-npy"),
        "json with bom": (b"\xef\xbb\xbf" + json.dumps({"instances": [rgb[:4, :4].tolist()]}).encode(),
                          "application/json"),
        "jsonlines crlf": ((json.dumps(rgb[:4, :4].tolist()) + "\r\n").encode() * 3, "application/jsonlines"),
        "json ragged batch": (json.dumps({"instances": [rgb[:4, :4].tolist(), rgb[:5, :3].tolist()]}).encode(),
                              "application/json"),
    }
    for name, (body, kind) in bodies.items():
        for accept in ("*/*", "application/x-npy; dtype=float16", "image/png"):
            yield f"{name}, accept {accept}", body, {"Content-Type": kind, "Accept": accept}


def _png_palette(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buf, format="PNG")
    return buf.getvalue()


def header_variants() -> Iterator[Request]:
    png = _png(np.zeros((6, 6, 3), np.uint8))
    for content_type in ODD_TYPES:
        yield f"content-type {content_type!r}", png, {"Content-Type": content_type}
    for accept in ACCEPTS:
        yield f"accept {accept!r}", png, {"Content-Type": "image/png", "Accept": accept}
        yield f"batch, accept {accept!r}", _npy(np.zeros((2, 6, 6, 3), np.uint8)), {
            "Content-Type": "application/x-npy", "Accept": accept}
    for kind in TYPES:
        yield f"{kind} holding garbage", bytes(range(256)) * 4, {"Content-Type": kind}
        yield f"{kind} empty", b"", {"Content-Type": kind}
    yield "custom attributes 5000 chars", png, {"Content-Type": "image/png",
                                                "X-Amzn-SageMaker-Custom-Attributes": "x" * 5000}
    yield "unknown headers", png, {"Content-Type": "image/png", "X-Whatever": "1", "Expect": "100-continue"}


def corpus(max_side: int) -> Iterator[Request]:
    yield from bombs(max_side)
    yield from many_images()
    yield from deep_and_wrong_json()
    yield from bad_encodings()
    yield from truncated_and_damaged()
    yield from odd_but_valid(max_side)
    yield from header_variants()
