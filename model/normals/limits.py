"""Size limits for training samples, checked from file headers before anything is decoded.

Why these numbers: a sample is decoded whole (16-bit PNGs by pure-Python pypng, which has no pixel
limit of its own) and turned into float32 tensors before it is resized, once per loader worker; and it
is resized so its *shorter* side equals ``image_size`` (up to 2048), so a very long, thin image grows
into a huge tensor (2 x 20000 at image_size 128 would become 128 x 1,280,000). The limits keep one
sample in flight to well under 2 GB.
"""

from __future__ import annotations

from model.family import DataFormatError

#: Largest width x height of one image, normal map or mask (8K UHD, 7680 x 4320, fits).
MAX_PIXELS = 1 << 25
#: Largest ratio of the longer to the shorter side.
MAX_ASPECT = 8


def check_dimensions(source: object, width: int, height: int) -> None:
    """Raise DataFormatError naming ``source`` when (width, height) from its header are out of limits."""
    if width < 1 or height < 1:
        raise DataFormatError(f"{source}: the header says {width}x{height} pixels; the file is damaged")
    if width * height > MAX_PIXELS:
        raise DataFormatError(
            f"{source}: {width}x{height} = {width * height:,} pixels is over the limit of {MAX_PIXELS:,}; "
            "downscale it (and its normal map and mask alike): training resizes every sample so its shorter "
            "side is image_size anyway")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise DataFormatError(
            f"{source}: {width}x{height} has an aspect ratio over {MAX_ASPECT}:1, which would be resized to a "
            f"huge tensor (shorter side = image_size); cut it into pieces no longer than {MAX_ASPECT}x their "
            "width (the same cuts for its normal map and mask)")
