"""The grey family: a 1x1-conv network, a folder of .npy files, mean squared error. Only what is
model-specific; everything else (serving conversions, the metric accumulator, panels) is the defaults'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from model.family import DataFormatError, ModelFamily

from .spec import SPEC


class TinyDataset(Dataset):
    def __init__(self, files, image_size):
        self.files, self.image_size = list(files), image_size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        x = torch.from_numpy(np.load(self.files[i])).float()[:, : self.image_size, : self.image_size]
        return {"input": x, "target": x.mean(0, keepdim=True)}


class TinyGrey(ModelFamily):
    spec = SPEC

    def build(self, config):
        return nn.Sequential(nn.Conv2d(3, config.hidden, 1), nn.ReLU(), nn.Conv2d(config.hidden, 1, 1))

    def index(self, channel_dir: Path):
        files = sorted(channel_dir.glob("*.npy"))
        if not files:
            raise DataFormatError(f"{channel_dir}: no .npy files")
        return files

    def dataset(self, samples, *, image_size, augment, seed):
        return TinyDataset(samples, image_size)

    def loss(self, outputs, batch):
        return ((outputs.float() - batch["target"]) ** 2).mean()

    def sample_metrics(self, outputs, batch):
        error = outputs.float() - batch["target"]
        return {"mse": (error**2).flatten(1).mean(1), "mae": error.abs().flatten(1).mean(1)}


def write_tiny_dataset(root: Path, count: int = 6) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        np.save(root / f"s{i}.npy", rng.random((3, 8, 8), dtype=np.float32))
