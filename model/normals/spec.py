"""The surface-normal family as the plumbing sees it (torch-free: the laptop CLIs read it)."""

from __future__ import annotations

from model.normals.config import UNetConfig
from model.spec import FamilySpec

RECORD_FORMAT = "tar stream of <key>.png|jpg|jpeg + <key>.normals.png (+ optional <key>.mask.png)"


def _stride(config: UNetConfig) -> int:
    return config.stride


SPEC = FamilySpec(
    config_type=UNetConfig,
    metrics=("mean_angular_error", "median_angular_error", "within_11.25deg", "within_22.5deg", "within_30deg"),
    objective="mean_angular_error",
    output_name="normals",
    output_channels=3,
    output_range=(-1.0, 1.0),
    higher_is_better=("within_11.25deg", "within_22.5deg", "within_30deg"),
    input_multiple=_stride,
    hooks=frozenset({"check_data", "constant_prediction", "sample_from_record", "summarize_prediction",
                     "dataset_set_epoch", "dataset_preload", "dataset_crop"}),
    record_format=RECORD_FORMAT,
)
