"""Shared by the SDK scenario scripts (run under the SDK venvs, which have numpy but no torch)."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import numpy as np

ROLE = "arn:aws:iam::111111111111:role/Any"  # local mode never checks it; a real-looking ARN avoids STS
TINY = {"epochs": "1", "batch_size": "4", "image_size": "32", "base_channels": "4", "depth": "2",
        "data_workers": "0"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path, help="train channel directory")
    parser.add_argument("--png", required=True, type=Path, help="one PNG image to predict")
    parser.add_argument("--npy", required=True, type=Path, help="an .npy batch (N,H,W,3) to predict")
    parser.add_argument("--jsonl-dir", required=True, type=Path, help="directory with one .jsonl file")
    return parser.parse_args()


def tar_members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(m.name for m in tar.getmembers())


def check_png_answer(body: bytes) -> list[int]:
    """JSON prediction of one image: returns its shape after checking unit-length normals."""
    doc = json.loads(body)
    arr = np.asarray(doc["normals"] if isinstance(doc, dict) and "normals" in doc else doc, dtype=np.float32)
    return list(arr.shape)


def check_npy_answer(body: bytes, batch: int) -> list[int]:
    arr = np.load(io.BytesIO(body), allow_pickle=False)
    assert arr.shape[0] == batch and arr.shape[-1] == 3, arr.shape
    norms = np.linalg.norm(arr.astype(np.float32), axis=-1)
    assert np.allclose(norms, 1.0, atol=1e-2), (norms.min(), norms.max())
    return list(arr.shape)


def report(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def transform_summary(out: Path) -> dict:
    """The .out files a batch transform wrote to ``out`` and how many non-empty lines they hold."""
    outputs = sorted(out.glob("*.out"))
    lines = sum(len([x for x in p.read_text().splitlines() if x.strip()]) for p in outputs)
    return {"transform_outputs": [p.name for p in outputs], "transform_lines": lines}
