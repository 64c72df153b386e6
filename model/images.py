"""Image pixels as models read them, whatever the file's mode: one rule for training, baselines and families."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Pillow's modes for greyscale with more than 8 bits per pixel.
SIXTEEN_BIT_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def image_to_rgb8(img: Image.Image) -> np.ndarray:
    """HxWx3 uint8 of any mode; 16-bit greyscale is scaled to 8 bits (Pillow's convert would clip it)."""
    if img.mode in SIXTEEN_BIT_GREY:
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.array(img.convert("RGB"))  # a writable copy: torch.from_numpy needs one; alpha is dropped
