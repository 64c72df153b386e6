"""The machine-speed yardstick: a plain U-Net's training step, independent of this project's network.

    python -m bench.reference_speed

A U-Net with widths 16 -> 256 (four 2x steps down, transposed convolutions up, BatchNorm + ReLU),
1 - cos loss, AdamW; 128 px, batch 16, channels_last, 2 threads, tensors already in memory. About
16 images/s on the 2-core machines the 10-minute goal is stated for; machines of that kind differ by up
to 2x, so wall-clock budgets are scaled by ``REFERENCE_IMAGES_PER_SECOND / measured``.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_IMAGES_PER_SECOND = 16.0


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PlainUNet(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128, 256)) -> None:
        super().__init__()
        self.down = nn.ModuleList(_block(cin, cout) for cin, cout in zip((3, *widths[:-1]), widths, strict=True))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(len(widths) - 1)))
        self.fuse = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, fuse in zip(self.up, self.fuse, strict=True):
            x = fuse(torch.cat([up(x), skips.pop()], dim=1))
        return F.normalize(self.head(x), dim=1)


def measure(steps: int = 8, warmup: int = 2, threads: int = 2) -> float:
    """Images/s of the reference training step (restores torch's thread count afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = PlainUNet().to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(16, 3, 128, 128).contiguous(memory_format=torch.channels_last)
        target = F.normalize(torch.randn(16, 3, 128, 128), dim=1)
        start = 0.0
        for i in range(warmup + steps):
            if i == warmup:
                start = time.perf_counter()
            loss = (1 - (model(x) * target).sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return 16 * steps / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    print(f"reference training step: {measure():.1f} images/s (goal machines: ~{REFERENCE_IMAGES_PER_SECOND:g})")
