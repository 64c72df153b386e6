"""Training augmentation for (image, normals, valid) triples, each a pure function of a seeded generator.

Geometry and the normals (camera space: x right, y up, z toward the viewer) must change together:

- **Random crops** (a window of the training size, where the resized sample is larger): the same camera
  with a shifted principal point; every pixel still shows the same surface along the same ray, so its
  normal is unchanged.
- **Framed windows** (``crop_fraction`` < 1): a smaller random window of the whole (mirrored,
  jittered) frame, with the frame coordinates of its pixels as two more input channels. The network's
  coordinate channels describe each pixel's viewing ray; computed on the window itself they would put
  every window at the frame centre. Validation and serving see whole frames. Measured (10-minute budget,
  ``bench/quality_bench.py``): 112-px windows of 128-px scenes train 1.3x the epochs per minute and
  cut the mean error by 0.8-1.7 deg within a style and 0.6 deg across styles; 96-px windows (the default)
  measured the same on a fast bf16 CPU and 1.6 deg better than 112 px on a 2-core AVX2 one.
- **Mirroring** left-right reflects the scene in the camera's y-z plane: x of every normal is negated.
- **Photometric** changes (brightness, contrast, per-channel gain, gamma) leave geometry alone.

Left out on purpose:

- Vertical flips and rotations: they would turn the "light from above" of most photographs upside down,
  and shading is one of the cues the model learns.
- Zoom (a smaller window scaled up: a longer focal length, normals unchanged). It was the default until
  measured: with a 10-minute budget, random zooms of 1-1.3x cost 1.4 deg of mean error on unseen scenes of
  the training style (14.1 vs 12.6 deg, 65% vs 70% within 11.25 deg) and 1.3 deg across styles (17.2 vs
  15.9 deg): the model is limited by compute there, and zoomed crops are blurred, unlike the images it
  is judged on.
"""

from __future__ import annotations

import numpy as np
import torch

from model.normals.network import frame_coordinates

BRIGHTNESS = 0.2
CONTRAST = 0.2
CHANNEL_GAIN = 0.08
GAMMA = 0.15


def random_window(height: int, width: int, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a random ``size`` x ``size`` window inside a ``height`` x ``width`` sample."""
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))


def framed_window(item: dict[str, torch.Tensor], size: int, seed: int, epoch: int,
                  index: int) -> dict[str, torch.Tensor]:
    """A random ``size`` window of a whole-frame item, its input carrying the frame coordinates (channels 4-5)."""
    image = item["input"]
    image = torch.cat([image, frame_coordinates(image[None])[0]])
    # Its own stream, a pure function of (seed, epoch, index) like every augmentation: resume stays exact.
    top, left = random_window(*image.shape[-2:], size, np.random.default_rng([seed, epoch, index, 1]))
    window = (..., slice(top, top + size), slice(left, left + size))
    return {"input": image[window].contiguous(), "normals": item["normals"][window].contiguous(),
            "valid": item["valid"][window].contiguous()}


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
