"""What the plumbing needs to know about the grey family (torch-free, read by the launch and tune CLIs)."""

from dataclasses import dataclass

from model.spec import FamilySpec


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 4


SPEC = FamilySpec(config_type=TinyConfig, metrics=("mse", "mae"), objective="mse", output_name="grey",
                  output_channels=1, output_range=(0.0, 1.0))
