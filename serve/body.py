"""Reading a request body under the payload limit, from any stream with ``read(n)`` (gunicorn's has no more)."""

from __future__ import annotations

from typing import Any

from serve.errors import BadRequest, PayloadTooLarge, ServeError
from serve.imagefiles import describe

_READ_CHUNK = 1 << 20
#: Over-limit bodies up to this size are read and discarded before answering 413, so clients that send
#: the whole body before reading (most HTTP clients) see the 413 instead of a broken pipe.
_MAX_DISCARD = 128 << 20


def read_body(stream: Any, length: int | None, limit: int) -> bytes | bytearray:
    """The body (``length``: its Content-Length, None when chunked), or PayloadTooLarge as soon as it is known to
    exceed ``limit`` bytes, or BadRequest when the stream breaks."""
    try:
        return _read_bounded(stream, length, limit)
    except ServeError:
        raise
    except Exception as exc:  # broken chunked encoding, client hung up mid-body, ...
        raise BadRequest(f"cannot read the request body ({describe(exc)})") from exc


def _read_bounded(stream: Any, length: int | None, limit: int) -> bytes | bytearray:
    if length is not None and length > limit:
        if length <= _MAX_DISCARD:
            _discard(stream, length)
        raise PayloadTooLarge(
            f"body is {length} bytes, over the limit of {limit} (SAGEMAKER_MAX_PAYLOAD_IN_MB); send fewer images"
        )
    if length is not None:
        return _read_exactly(stream, length)
    chunks, total = [], 0  # chunked bodies have no length: read at most limit + 1 bytes
    while total <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        _discard(stream, _MAX_DISCARD)
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB)")
    return b"".join(chunks)


def _read_exactly(stream: Any, length: int) -> bytearray:
    """``length`` bytes read into one buffer: a body is held once, never as chunks plus a join."""
    buf = bytearray(length)
    got = 0
    while got < length:
        chunk = stream.read(min(_READ_CHUNK, length - got))
        if not chunk:
            raise BadRequest(f"the body ended after {got} of the {length} bytes its Content-Length announced")
        buf[got:got + len(chunk)] = chunk
        got += len(chunk)
    return buf


def _discard(stream: Any, budget: int) -> None:
    while budget > 0:
        chunk = stream.read(min(_READ_CHUNK, budget))
        if not chunk:
            return
        budget -= len(chunk)
