"""The explicit opt-in to generated demo data (hyperparameter ``synthetic_samples``)."""

from __future__ import annotations

import logging
from pathlib import Path

from train.config import DEFAULT_FAMILY, TrainConfig
from train.errors import UserError

log = logging.getLogger(__name__)


def with_synthetic_channels(channels: dict[str, Path], config: TrainConfig, scratch: Path) -> dict[str, Path]:
    """``channels`` plus a generated ``train`` channel when synthetic data was asked for."""
    if config.synthetic_samples == 0:
        return channels
    if "train" in channels:
        raise UserError(
            "both a 'train' channel and synthetic_samples were given",
            "drop the train channel to use generated scenes, or set synthetic_samples=0 to use your data",
        )
    if config.model_family != DEFAULT_FAMILY:
        raise UserError("synthetic_samples only generates data for the built-in surface-normal model",
                        "provide a 'train' channel for your own model family")
    from model.normals.synthetic import write_dataset

    target = scratch / "synthetic-train"
    log.info("generating %d synthetic %dpx scenes into %s", config.synthetic_samples, config.synthetic_size, target)
    write_dataset(target, config.synthetic_samples, config.synthetic_size, seed=config.seed)
    return {**channels, "train": target}
