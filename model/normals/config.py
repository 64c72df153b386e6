"""Architecture options of the U-Net. Free of torch so launchers can validate hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UNetConfig:
    base_channels: int = field(default=16, metadata={
        "help": "U-Net width: channels of the first level, doubled at each level down.", "rule": "1..256"})
    depth: int = field(default=4, metadata={
        "help": "U-Net levels (2x down-sampling steps); inputs are padded to a multiple of 2**depth.", "rule": "1..6"})
    coord_channels: bool = field(default=True, metadata={
        "help": "Feed each pixel's position in the frame (x right, y up) as two extra input channels.", "rule": ""})

    def __post_init__(self) -> None:
        if not 1 <= self.base_channels <= 256:
            raise ValueError(f"base_channels must be in [1, 256], got {self.base_channels}")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth must be in [1, 6], got {self.depth}")

    @property
    def stride(self) -> int:
        return 2**self.depth
