"""Decode each sample once per job: a bounded in-memory store of resized (image, normals, valid) tensors.

Decoding a 128 px PNG pair costs a few milliseconds and resizing a large photo far more; a training
step of the default network costs about a second on two CPU cores, so re-decoding every epoch is waste
that also needs loader processes to hide. Kept per sample after the shorter-side resize: image as uint8
(3 bytes/pixel), normals float32 (12), valid bool (1), i.e. about 16 bytes per pixel: 256 scenes of
128 x 128 take 67 MB. Samples beyond the budget are decoded on every access as before.
"""

from __future__ import annotations

import os

import torch

_GIB = 1 << 30


def default_budget_bytes() -> int:
    """A quarter of the machine's memory, at most 4 GiB: room is left for the model, loaders and serving."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 4 * _GIB
    return min(4 * _GIB, physical // 4)


class DecodedStore:
    """index -> (3xHxW uint8 image, 3xHxW float32 normals, 1xHxW bool valid), until the budget is used."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget = default_budget_bytes() if budget_bytes is None else budget_bytes
        self.used = 0
        self._items: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        return self._items.get(index)

    def put(self, index: int, entry: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
        """Keep a packed entry if the budget allows (else it is simply decoded again next time)."""
        size = sum(t.numel() * t.element_size() for t in entry)
        if self.used + size <= self.budget:
            self._items[index] = entry
            self.used += size

    @staticmethod
    def pack(img: torch.Tensor, nrm: torch.Tensor, val: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A float image in [0, 1] is kept as uint8: cached or not, every epoch sees the same pixels."""
        return img.mul(255.0).round_().to(torch.uint8), nrm.float().contiguous(), val.bool().contiguous()

    @staticmethod
    def unpack(entry) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image8, nrm, val = entry
        return image8.float().div_(255.0), nrm, val.float()
