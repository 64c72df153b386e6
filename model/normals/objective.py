"""Angular loss and angular-error metrics for unit-normal predictions."""

from __future__ import annotations

import math

import torch

from model.family import Batch, MetricAccumulator

THRESHOLDS_DEG = (11.25, 22.5, 30.0)
_BIN_DEG = 0.05
_BINS = int(180 / _BIN_DEG)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (1 - cos angle) over valid pixels. pred/target: Nx3xHxW, valid: Nx1xHxW bool."""
    cos = (pred.float() * target.float()).sum(dim=1, keepdim=True)
    weight = valid.float()
    return ((1.0 - cos) * weight).sum() / weight.sum().clamp_min(1.0)


def angular_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean angle in radians between prediction and truth over valid pixels: the metric itself.

    Unlike 1 - cos, whose gradient vanishes as the error shrinks (1 - cos(a) ~ a^2 / 2), the angle keeps
    pulling small errors down. acos has an infinite slope at 0; atan2(|p x t|, p . t) is the same angle
    with a bounded gradient, and the epsilon under the root keeps it finite where p == t.
    """
    p, t = pred.float(), target.float()
    cross = torch.linalg.cross(p, t, dim=1)
    sin = torch.sqrt((cross * cross).sum(dim=1, keepdim=True) + 1e-12)
    angle = torch.atan2(sin, (p * t).sum(dim=1, keepdim=True))
    weight = valid.float()
    return (angle * weight).sum() / weight.sum().clamp_min(1.0)


def angular_error_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    cos = (pred.float() * target.float()).sum(dim=1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


class AngularMetrics(MetricAccumulator):
    """Mean, median and within-threshold fractions of the per-pixel angular error, in degrees.

    The median is the error below which half the pixels fall, read from a 0.05-degree histogram (so it
    is exact to within 0.05 degrees, and the state sums across ranks); mean and fractions are exact.
    """

    def __init__(self) -> None:
        self._sum = 0.0
        self._count = 0.0
        self._within = [0.0] * len(THRESHOLDS_DEG)
        self._hist = torch.zeros(_BINS, dtype=torch.float64)

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        err = angular_error_deg(outputs, batch["normals"].to(outputs.device))
        err = err[batch["valid"].to(outputs.device)[:, 0]].double()
        if err.numel() == 0:
            return
        self._sum += float(err.sum())
        self._count += err.numel()
        for i, t in enumerate(THRESHOLDS_DEG):
            self._within[i] += float((err < t).sum())
        self._hist += torch.histc(err, bins=_BINS, min=0.0, max=180.0).cpu()

    def state(self) -> torch.Tensor:
        head = torch.tensor([self._sum, self._count, *self._within], dtype=torch.float64)
        return torch.cat([head, self._hist])

    def load_state(self, state: torch.Tensor) -> None:
        s = state.double().cpu()
        self._sum, self._count = float(s[0]), float(s[1])
        self._within = [float(v) for v in s[2 : 2 + len(THRESHOLDS_DEG)]]
        self._hist = s[2 + len(THRESHOLDS_DEG) :].clone()

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            return {}
        out = {
            "mean_angular_error": self._sum / self._count,
            "median_angular_error": self._median(),
        }
        for t, n in zip(THRESHOLDS_DEG, self._within, strict=False):
            out[f"within_{t:g}deg"] = n / self._count
        return out

    def _median(self) -> float:
        cum = torch.cumsum(self._hist, 0)
        half = self._count / 2.0
        i = int(torch.searchsorted(cum, torch.tensor(half, dtype=torch.float64)))
        before = float(cum[i - 1]) if i > 0 else 0.0
        inside = float(self._hist[i])
        frac = (half - before) / inside if inside > 0 else 0.5
        return (i + frac) * _BIN_DEG if math.isfinite(frac) else i * _BIN_DEG
