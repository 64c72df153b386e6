"""Data-capture files as SageMaker writes them (one JSON line per request), for the monitor tests."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from pathlib import Path


def capture_line(body: bytes, content_type: str, answer: bytes = b"", answer_type: str = "application/json",
                 *, when: str = "2026-12-03T16:00:00Z", json_types: Sequence[str] = ("application/json",)) -> str:
    """One request as data capture records it: JSON content types as text, everything else base64."""

    def part(data: bytes, media: str, mode: str) -> dict:
        if media.split(";")[0] in json_types:
            return {"observedContentType": media, "mode": mode, "data": data.decode(), "encoding": "JSON"}
        return {"observedContentType": media, "mode": mode, "data": base64.b64encode(data).decode(),
                "encoding": "BASE64"}

    return json.dumps({"captureData": {"endpointInput": part(body, content_type, "INPUT"),
                                       "endpointOutput": part(answer, answer_type, "OUTPUT")},
                       "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": when},
                       "eventVersion": "0"})


def write_capture(folder: Path, lines: Sequence[str], name: str = "12-00-00-000-abcd.jsonl") -> Path:
    """Lines into a file under the endpoint/variant/yyyy/mm/dd/hh layout data capture uses."""
    path = folder / "normals" / "AllTraffic" / "2026" / "12" / "03" / "16" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path
