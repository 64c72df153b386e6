"""A second, deliberately different model family, used to prove the seam: per-pixel RGB -> grey
regression on a made-up "*.npy pairs" format. Nothing in train/, serve/ or container/ knows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from model.family import DataFormatError, MetricAccumulator, ModelFamily


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 4


class TinyDataset(Dataset):
    def __init__(self, files, image_size):
        self.files, self.image_size = list(files), image_size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        x = torch.from_numpy(np.load(self.files[i])).float()[:, : self.image_size, : self.image_size]
        return {"input": x, "target": x.mean(0, keepdim=True)}


class MSE(MetricAccumulator):
    def __init__(self):
        self.total = torch.zeros(2, dtype=torch.float64)

    def update(self, outputs, batch):
        self.total += torch.tensor([float(((outputs - batch["target"]) ** 2).sum()), outputs.numel()])

    def state(self):
        return self.total.clone()

    def load_state(self, state):
        self.total = state.clone()

    def compute(self):
        return {"mse": float(self.total[0] / max(self.total[1], 1))}


class TinyGrey(ModelFamily):
    config_type = TinyConfig
    objective_metric = "validation:mse"

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

    def metrics(self):
        return MSE()

    def panel(self, batch, outputs, index):
        return np.zeros((4, 12, 3), np.uint8)

    def to_input(self, image, preprocessing):
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()

    def from_output(self, output, image_shape):
        return output.permute(1, 2, 0).numpy()

    def to_image(self, prediction):
        return np.repeat((prediction.clip(0, 1) * 255).astype(np.uint8), 3, axis=-1)


def write_tiny_dataset(root: Path, count: int = 6) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        np.save(root / f"s{i}.npy", rng.random((3, 8, 8), dtype=np.float32))
