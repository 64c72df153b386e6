"""The decoder's up block reduces channels before up-sampling: the same function as the other order."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.normals.network import _Up


def test_reducing_before_upsampling_gives_what_upsampling_first_gave():
    torch.manual_seed(0)
    up = _Up(16, 8, 8).eval()
    x, skip = torch.randn(2, 16, 5, 7), torch.randn(2, 8, 10, 14)
    with torch.no_grad():
        old = up.conv(torch.cat([up.reduce(F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=False)),
                                 skip], dim=1))
        assert torch.allclose(up(x, skip), old, atol=1e-5)
