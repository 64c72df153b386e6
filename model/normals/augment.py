"""Training augmentation for (image, normals, valid) triples, each a pure function of a seeded generator.

Geometry and the normals (camera space: x right, y up, z toward the viewer) must change together:

- **Zoom** (cut a smaller window and scale it up to the crop size): for a pinhole camera this is the
  same camera with a longer focal length and a shifted principal point, so every pixel still shows the
  same surface seen along the same ray and its camera-space normal is unchanged. (The network's
  coordinate channels are relative to the frame, so a zoom also teaches it other fields of view.)
- **Mirroring** left-right reflects the scene in the camera's y-z plane: x of every normal is negated.
- **Photometric** changes (brightness, contrast, per-channel gain, gamma) leave geometry alone.

Vertical flips and rotations are left out on purpose: they would turn the "light from above" of most
photographs upside down, and shading is one of the cues the model learns.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ZOOM_RANGE = (1.0, 1.3)
BRIGHTNESS = 0.2
CONTRAST = 0.2
CHANNEL_GAIN = 0.08
GAMMA = 0.15


def random_window(height: int, width: int, size: int, rng: np.random.Generator, zoom: bool):
    """(top, left, side) of a square window, ``side <= min(height, width)``, to be scaled to ``size``."""
    side = size
    if zoom:
        side = max(1, min(height, width, round(size / rng.uniform(*ZOOM_RANGE))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return top, left, side


def scale_window(img: torch.Tensor, nrm: torch.Tensor, val: torch.Tensor, size: int):
    """Scale a square window to ``size``: image bilinear; normals and mask nearest (no invalid bleed)."""
    if img.shape[-1] == size:
        return img, nrm, val
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp_(0, 1)
    nrm = F.interpolate(nrm[None], size=(size, size), mode="nearest-exact")[0]
    val = F.interpolate(val[None], size=(size, size), mode="nearest-exact")[0]
    return img, nrm, val


def mirror(img: torch.Tensor, nrm: torch.Tensor, val: torch.Tensor):
    flipped = nrm.flip(-1) * torch.tensor([-1.0, 1.0, 1.0], dtype=nrm.dtype).view(3, 1, 1)
    return img.flip(-1), flipped, val.flip(-1)


def photometric(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast, per-channel gain and gamma jitter of a 3xHxW image in [0, 1]."""
    gain = (1.0 + rng.uniform(-BRIGHTNESS, BRIGHTNESS)) * (1.0 + rng.uniform(-CHANNEL_GAIN, CHANNEL_GAIN, 3))
    contrast = 1.0 + rng.uniform(-CONTRAST, CONTRAST)
    gamma = float(np.exp(rng.uniform(-GAMMA, GAMMA)))
    mean = img.mean()
    out = (img - mean) * contrast + mean
    out = out * torch.as_tensor(gain, dtype=img.dtype).view(3, 1, 1)
    return out.clamp_(0, 1).pow_(gamma)
