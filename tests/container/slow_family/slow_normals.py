"""A test-only model family: the surface-normal U-Net, slow to build. Mounted into the container on
PYTHONPATH by tests/container/test_serve_restarts.py to widen the window in which a replacement worker is
loading; the image never ships it."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from model.normals.family import SurfaceNormals

LOAD_SECONDS = 6.0


class SlowLoadingNormals(SurfaceNormals):
    def build(self, config: Any) -> nn.Module:
        time.sleep(LOAD_SECONDS)
        return super().build(config)
