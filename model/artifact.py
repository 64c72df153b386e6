"""The model directory: what `train` leaves in /opt/ml/model and `serve` loads.

Flat layout (SageMaker tars the directory's children):
  model.pt     state_dict, loadable with ``torch.load(..., weights_only=True)``
  model.json   format version, family, architecture config, preprocessing, training summary
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from model.family import ModelFamily, config_from_dict, config_to_dict, family_path, load_family
from model.files import META_FILE, WEIGHTS_FILE

FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """The model directory is missing, incomplete or from an incompatible version."""


@dataclass(frozen=True)
class LoadedModel:
    family: ModelFamily
    config: Any
    network: nn.Module
    preprocessing: dict[str, Any]
    meta: dict[str, Any]


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temp file in the same directory, fsync, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates 0600; artifacts are read by other users (serverless runs as non-root).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda fh: torch.save(obj, fh))


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers, whose state_dict keys are clean."""
    while True:
        if hasattr(network, "module") and isinstance(network.module, nn.Module):
            network = network.module
        elif hasattr(network, "_orig_mod"):
            network = network._orig_mod
        else:
            return network


def save_model_dir(
    directory: Path,
    family: ModelFamily,
    config: Any,
    network: nn.Module,
    preprocessing: dict[str, Any],
    summary: dict[str, Any] | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(network).state_dict().items()}
    atomic_torch_save(state, directory / WEIGHTS_FILE)
    meta = {
        "format_version": FORMAT_VERSION,
        "family": family_path(family),
        "config": config_to_dict(config),
        "preprocessing": preprocessing,
        "training": summary or {},
    }
    atomic_write_bytes(directory / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())


def load_model_dir(directory: Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network from a model directory (weights only: no pickled code is executed)."""
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    missing = [p.name for p in (meta_path, weights_path) if not p.is_file()]
    if missing:
        present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise ArtifactError(
            f"model directory {directory} lacks {missing} (it holds {present}); "
            "point it at the output of `train` (model.tar.gz extracted flat, no sub-folder)"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{meta_path} has format_version {version!r}; this image reads {FORMAT_VERSION}. "
            "Retrain with this image or serve with the image that trained it."
        )
    try:
        family = load_family(meta["family"])
        config = config_from_dict(family.spec.config_type, meta["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{meta_path}: cannot rebuild the model: {exc}") from exc
    network = family.build(config)
    try:
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises anything from KeyError to UnpicklingError here
        raise ArtifactError(
            f"{weights_path} is not a readable weights-only state_dict ({type(exc).__name__}: {exc}); "
            "it may be truncated or not written by `train`: retrain, or re-extract model.tar.gz"
        ) from exc
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights_path} does not match the config in {meta_path}: {exc}") from exc
    return LoadedModel(family, config, network, dict(meta.get("preprocessing", {})), meta)
