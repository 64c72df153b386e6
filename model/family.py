"""The seam between the SageMaker plumbing and a model.

A *family* bundles everything model-specific: the network and its typed config, the on-disk dataset
format, loss and metrics, and the conversion between request images and tensors. Training and serving
call only these methods, so a user brings their own model by writing one subclass and naming it in the
``model_family`` hyperparameter (``package.module:ClassName``).
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

Batch = dict[str, torch.Tensor]


class DataFormatError(ValueError):
    """A dataset on disk does not follow the family's documented format (names the file)."""


class MetricAccumulator(ABC):
    """Accumulates metrics over batches. State lives in tensors so it can be summed across ranks."""

    @abstractmethod
    def update(self, outputs: torch.Tensor, batch: Batch) -> None: ...

    @abstractmethod
    def state(self) -> torch.Tensor:
        """A 1-D float64 tensor whose element-wise sum over ranks is the global state."""

    @abstractmethod
    def load_state(self, state: torch.Tensor) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...


class ModelFamily(ABC):
    """Everything the plumbing needs to know about a model. Subclass it to bring your own."""

    #: Frozen dataclass with the architecture options; its fields become hyperparameters.
    config_type: ClassVar[type]
    #: Name of the metric hyperparameter tuning should minimise (must be one of ``metrics()``'s keys).
    objective_metric: ClassVar[str]

    # -- network -------------------------------------------------------------------------------
    @abstractmethod
    def build(self, config: Any) -> nn.Module:
        """A freshly initialised network for ``config`` (an instance of ``config_type``)."""

    def preprocessing(self, config: Any, image_size: int) -> dict[str, Any]:
        """JSON-serialisable facts serving needs to prepare inputs like training did."""
        return {"image_size": image_size}

    # -- data ----------------------------------------------------------------------------------
    @abstractmethod
    def index(self, channel_dir: Path) -> Sequence[Any]:
        """List a channel's samples (cheap: names only); raise DataFormatError for a broken layout."""

    @abstractmethod
    def dataset(self, samples: Sequence[Any], *, image_size: int, augment: bool, seed: int) -> Dataset:
        """A map-style dataset over ``samples`` whose items are dicts of tensors incl. ``"input"``.

        Random augmentation must be a pure function of (seed, epoch, index) so resumed runs repeat it;
        the dataset gets the epoch through ``set_epoch`` when it has one.
        """

    def check_data(self, samples: Sequence[Any]) -> list[str]:
        """Optional: every problem of ``samples`` found cheaply (file headers), before training starts.

        Each item names the file, what is wrong and how to fix it; the job fails listing them all at once
        instead of failing mid-training on the first bad sample. The default checks nothing.
        """
        return []

    #: Pipe-mode record format, for error messages and docs (None: this family cannot read Pipe channels).
    record_format: ClassVar[str | None] = None

    def sample_from_record(self, files: Mapping[str, bytes], key: str, *, image_size: int, augment: bool,
                           seed: int, epoch: int, index: int) -> Batch:
        """Optional, for Pipe input mode: one item (like ``dataset(...)[index]``) from a streamed record.

        A record is the group of consecutive tar members sharing ``key`` (the member path up to the first
        dot of its file name); ``files`` maps the rest of each name (``"png"``, ``"normals.png"``...) to its
        bytes. Augmentation must be a pure function of (seed, epoch, index) as in ``dataset``. Families
        that do not override this simply cannot train from Pipe channels (File/FastFile still work).
        """
        raise NotImplementedError(f"{type(self).__name__} does not read Pipe-mode records")

    # -- objective -----------------------------------------------------------------------------
    @abstractmethod
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    @abstractmethod
    def metrics(self) -> MetricAccumulator: ...

    def constant_prediction(self, batch: Batch) -> torch.Tensor | None:
        """Optional: the best input-independent answer for ``batch`` (e.g. "every normal faces the camera").

        Its validation metrics are reported beside the model's, so a number has context; None = no baseline.
        """
        return None

    @abstractmethod
    def panel(self, batch: Batch, outputs: torch.Tensor, index: int) -> np.ndarray:
        """An HxWx3 uint8 picture (input | truth | prediction) of one sample, for people to look at."""

    # -- serving -------------------------------------------------------------------------------
    @abstractmethod
    def to_input(self, image: np.ndarray, preprocessing: Mapping[str, Any]) -> torch.Tensor:
        """One HxWx3 image (uint8, or float in [0, 1]) to a CxH'xW' float32 network input."""

    @abstractmethod
    def from_output(self, output: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray:
        """One network output back to an array for the client, matching the request image's size."""

    @abstractmethod
    def to_image(self, prediction: np.ndarray) -> np.ndarray:
        """A prediction as an HxWx3 uint8 picture (what ``Accept: image/png`` returns)."""

    # -- monitoring (optional) -------------------------------------------------------------------
    def summarize_prediction(self, prediction: np.ndarray) -> Any:
        """Optional: a ``model.drift.Summary`` of one prediction (fixed-edge histograms), so drift in what
        the model answers can be compared with its validation answers. Default: none."""
        return None


def family_path(family: ModelFamily | type[ModelFamily]) -> str:
    cls = family if isinstance(family, type) else type(family)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_family(path: str) -> ModelFamily:
    """Instantiate the family named ``package.module:ClassName``."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"model family {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model family {path!r}: cannot import {module_name!r} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
        raise ValueError(f"model family {path!r}: {class_name!r} is not a ModelFamily subclass")
    return cls()


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(config_type: type, values: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {config_type.__name__} keys {unknown}; valid: {sorted(names)}")
    return config_type(**values)
