"""The surface-normal model family: the U-Net, its data format, loss, metrics and codecs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from model.drift import Summary, summarize_normals
from model.family import Batch, ModelFamily, to_padded_tensor
from model.normals.config import UNetConfig
from model.normals.data import (
    INPUT_MEAN,
    INPUT_STD,
    NormalsDataset,
    Sample,
    index_channel,
    make_item,
    normalize_input,
    sample_from_record,
)
from model.normals.encoding import normals_to_rgb
from model.normals.network import UNet
from model.normals.objective import AngularMetrics, angular_loss
from model.normals.spec import SPEC


class SurfaceNormals(ModelFamily):
    spec = SPEC

    def build(self, config: UNetConfig) -> nn.Module:
        return UNet(config)

    def preprocessing(self, config: UNetConfig, image_size: int) -> dict[str, Any]:
        return {
            "image_size": image_size,
            "input_mean": INPUT_MEAN,
            "input_std": INPUT_STD,
            "pad_multiple": config.stride,
            "normals_encoding": "rgb=(n+1)/2*255, x right, y up, z toward the viewer",
        }

    def index(self, channel_dir: Path) -> list[Sample]:
        return index_channel(channel_dir)

    def dataset(self, samples: Sequence[Sample], *, image_size: int, augment: bool, seed: int) -> Dataset:
        return NormalsDataset(samples, image_size=image_size, augment=augment, seed=seed)

    def check_data(self, samples: Sequence[Sample]) -> list[str]:
        from model.normals.check import check_samples

        return check_samples(samples)

    def sample_from_record(self, files: Mapping[str, bytes], key: str, *, image_size: int, augment: bool,
                           seed: int, epoch: int, index: int) -> Batch:
        image, normals, valid = sample_from_record(dict(files), key)
        return make_item(image, normals, valid, image_size, augment, seed, epoch, index)

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return angular_loss(outputs, batch["normals"], batch["valid"])

    def metrics(self) -> AngularMetrics:
        # The median is no mean of per-sample values, so this family writes its own accumulator.
        return AngularMetrics()

    def constant_prediction(self, batch: Batch) -> torch.Tensor:
        facing = torch.zeros_like(batch["normals"], dtype=torch.float32)
        facing[:, 2] = 1.0
        return facing

    def panel(self, batch: Batch, outputs: torch.Tensor, index: int) -> np.ndarray:
        image = (batch["input"][index, :3].float().cpu() * INPUT_STD + INPUT_MEAN).clamp(0, 1)
        image = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        valid = batch["valid"][index, 0].cpu().numpy()
        truth = normals_to_rgb(batch["normals"][index].float().cpu().permute(1, 2, 0).numpy(), valid)
        pred = normals_to_rgb(outputs[index].detach().float().cpu().permute(1, 2, 0).numpy())
        return np.concatenate([image, truth, pred], axis=1)

    def to_input(self, image: np.ndarray, preprocessing: Mapping[str, Any]) -> torch.Tensor:
        return normalize_input(to_padded_tensor(image, int(preprocessing.get("pad_multiple", 16))))

    def to_image(self, prediction: np.ndarray) -> np.ndarray:
        return normals_to_rgb(prediction)

    def summarize_prediction(self, prediction: np.ndarray) -> Summary:
        return summarize_normals(prediction)
