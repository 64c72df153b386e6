"""Media types and Accept negotiation. Bodies are decoded in ``serve.decoding`` and encoded in
``serve.encoding``; both key their tables by the type names here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from werkzeug.http import parse_options_header

from serve.errors import NotAcceptable

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
#: Answer types in the order wildcards prefer them (``application/*`` -> JSON).
ANSWER_TYPES = (JSON, NPY, PNG, JSONLINES)
NPY_DTYPES = ("float32", "float16")


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
    accept: list[MediaType] | None, default: MediaType | Sequence[MediaType], *, count: int, same_shape: bool
) -> MediaType:
    """The response type: the client's most preferred type that can hold ``count`` predictions.

    ``default`` answers a missing Accept or ``*/*``; given as a list, the first one that can hold the answer
    wins (a configured ``image/png`` default still lets a batch fall back to JSON).
    """
    defaults = [default] if isinstance(default, MediaType) else list(default)
    wanted = [MediaType("*/*")] if accept is None else accept
    reasons: list[str] = []
    for media in wanted:
        if media.essence == "*/*":
            candidates = defaults
        elif media.essence.endswith("/*"):
            major = media.essence.split("/")[0] + "/"
            candidates = [MediaType(e) for e in ANSWER_TYPES if e.startswith(major)]
        elif media.essence in ANSWER_TYPES:
            candidates = [media]
        else:
            continue
        for candidate in candidates:
            reason = _unsatisfiable(candidate, count, same_shape)
            if reason is None:
                return candidate
            reasons.append(reason)
    why = f" ({'; '.join(reasons)})" if reasons else ""
    raise NotAcceptable(
        f"cannot answer in any type the Accept header allows{why}; supported: {', '.join(ANSWER_TYPES)}"
    )


def answer_type(value: str) -> MediaType:
    """``value`` as a type we answer in, or ValueError naming the ones we do."""
    media = parse_media_type(value)
    if media.essence not in ANSWER_TYPES:
        raise ValueError(f"{value!r} is not one of {list(ANSWER_TYPES)}")
    return media


def fallback_types(request: MediaType, configured: MediaType | None) -> list[MediaType]:
    """What a missing or ``*/*`` Accept asks for, best first.

    The configured default (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT) when it can hold the answer; then JSON lines for
    a JSON-lines request (batch transform splits and joins by line) and JSON for anything else.
    """
    own = MediaType(JSONLINES if request.essence == JSONLINES else JSON)
    return [own] if configured is None else [configured, own]


def check_acceptable(accept: list[MediaType] | None) -> None:
    """Fail before decoding when the Accept header names nothing we could ever produce."""
    if accept is None:
        return
    for media in accept:
        if media.essence == "*/*" or media.essence in ANSWER_TYPES:
            return
        if media.essence.endswith("/*") and any(e.startswith(media.essence[:-1]) for e in ANSWER_TYPES):
            return
    raise NotAcceptable(f"the Accept header names no type we produce; supported: {', '.join(ANSWER_TYPES)}")
