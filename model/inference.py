"""Images through a family's network the way serving runs them: prepare, forward, finish.

The three stages are split so the server can overlap them (``prepare`` and ``finish`` on request threads,
``forward`` batched on its inference thread); the drift baseline ``train`` writes runs the same stages, so its
validation predictions are the ones an endpoint would have answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from model.family import ModelFamily
from model.runtime import Runtime


def prepare(family: ModelFamily, preprocessing: Mapping[str, Any], image: np.ndarray) -> torch.Tensor:
    """One checked HxWx3 image to a CxH'xW' float32 CPU tensor (padding etc. by the family)."""
    if not image.flags.writeable:  # e.g. decoded straight from a request buffer; torch wants to own it
        image = image.copy()
    return family.to_input(image, preprocessing)


def forward(network: nn.Module, runtime: Runtime, batch: torch.Tensor) -> torch.Tensor:
    """NxCxHxW inputs (one shape) to float32 CPU outputs in one pass, in ``runtime``'s layout and precision.

    ``runtime`` is the one the network was placed with (``Runtime.for_model``), so its layout is decided."""
    with torch.inference_mode():
        x = batch.to(runtime.device, non_blocking=True)
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast():
            out = network(x)
        return out.float().cpu()


def finish(family: ModelFamily, output: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray:
    """One output back to an HxWxC float32 array the size of the input image."""
    return np.ascontiguousarray(family.from_output(output, image_shape), dtype=np.float32)


def predict_one(family: ModelFamily, network: nn.Module, runtime: Runtime, preprocessing: Mapping[str, Any],
                image: np.ndarray) -> np.ndarray:
    """The prediction for one image (the network must already be in eval mode)."""
    return finish(family, forward(network, runtime, prepare(family, preprocessing, image)[None])[0], image.shape)
