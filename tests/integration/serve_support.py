"""Helpers shared by the serving tests: a tiny model directory and request bodies."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from flask import Flask

    from serve.metrics import ServeMetrics
    from serve.predictor import Predictor
    from serve.settings import ServeSettings


def make_tiny_model_dir(path: Path, image_size: int = 32, base_channels: int = 4, depth: int = 2) -> Path:
    """A model directory of the built-in family with fresh weights (serving cost does not depend on training)."""
    from model.artifact import save_model_dir
    from model.normals.config import UNetConfig
    from model.normals.family import SurfaceNormals

    family = SurfaceNormals()
    config = UNetConfig(base_channels=base_channels, depth=depth)
    save_model_dir(path, family, config, family.build(config), family.preprocessing(config, image_size))
    return path


def serve_app(predictor: Predictor, settings: ServeSettings, metrics: ServeMetrics | None = None) -> Flask:
    """The app a worker builds: ``predictor`` behind a started batcher that reports to the app's ``metrics``."""
    from serve.app import create_app
    from serve.batching import make_batcher
    from serve.metrics import ServeMetrics

    metrics = metrics or ServeMetrics()
    return create_app(predictor, make_batcher(predictor, settings, metrics).start(), settings, metrics)


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
