"""What the plumbing needs to know about a model family, declared in one torch-free place.

A family's ``spec.py`` holds ``SPEC = FamilySpec(...)``: its config type, its metrics, the tuning objective,
the name and shape of its answer, its input size multiple and the optional hooks it implements. Metric lines,
the MetricDefinitions, the tuning CLI's default objective, the launch CLI's hyperparameter check and the
JSON answers all read it, so none of them names a model. Importing this module (or a family's spec) needs
no torch: the laptop CLIs read specs too.

The spec of the family ``package.module:ClassName`` is ``SPEC`` in ``package.spec``, next to the family's
module (:func:`load_spec`); the family class points at the same object with ``spec = SPEC``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The optional hooks a family may declare (``FamilySpec.hooks``), and what each one is.
HOOKS: dict[str, str] = {
    "check_data": "family.check_data(samples): every problem of a channel found cheaply, before training",
    "constant_prediction": "family.constant_prediction(batch): an input-independent answer reported beside "
                           "the model's validation metrics",
    "sample_from_record": "family.sample_from_record(files, key, ...): one item from a Pipe-mode record",
    "summarize_prediction": "family.summarize_prediction(prediction): a drift summary of one answer",
    "baseline_image": "family.baseline_image(sample): the raw input image of a sample, for the drift baseline",
    "dataset_set_epoch": "dataset.set_epoch(epoch): the dataset is told the epoch before each one",
    "dataset_preload": "dataset.preload() -> bool: the dataset decodes itself into memory (no loader workers)",
    "dataset_crop": "dataset.set_crop(size): training items are random size x size windows of the image_size "
                    "frame (from crop_fraction); the dataset tells the model where each window sits if it cares",
}
#: Hooks that are methods of the family class (the others are methods of the family's dataset).
FAMILY_METHOD_HOOKS = ("check_data", "constant_prediction", "sample_from_record", "summarize_prediction",
                       "baseline_image")
#: Metric lines of every family, whatever its metrics (the training loop measures these itself).
GENERIC_METRICS = ("train:loss", "train:images_per_second", "validation:loss", "test:loss")
#: Splits on which the family's own metrics are reported.
EVALUATED_SPLITS = ("validation", "test")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _no_multiple(config: Any) -> int:
    return 1


@dataclass(frozen=True)
class FamilySpec:
    """The torch-free facts about one model family. Only the first four fields have no default."""

    #: Frozen dataclass of architecture options; its fields become hyperparameters.
    config_type: type
    #: Names of the family's metrics, as its accumulator's ``compute()`` returns them (e.g. ``"mse"``).
    metrics: tuple[str, ...]
    #: The metric tuning optimises by default, one of ``metrics``.
    objective: str
    #: The key of the prediction in JSON answers (``{"shape": [...], "<output_name>": [...]}``).
    output_name: str
    #: Channels of one prediction (HxWxC); answers are sized from it before the model runs.
    output_channels: int = 3
    #: Values of a prediction lie in [low, high]; JSON answers clip to it and round to 1e-4.
    output_range: tuple[float, float] = (-1.0, 1.0)
    #: Metrics for which higher is better (the rest are lower-is-better); decides the tuning direction.
    higher_is_better: tuple[str, ...] = ()
    #: Input sides must be a multiple of this function of the config (e.g. 2**depth for a U-Net).
    input_multiple: Callable[[Any], int] = _no_multiple
    #: Optional hooks this family implements, by name (see ``HOOKS``); the plumbing calls no other.
    hooks: frozenset[str] = frozenset()
    #: Pipe-mode record format, for messages and docs (needs the ``sample_from_record`` hook).
    record_format: str | None = None
    #: Short name for humans and file names (default: the output name).
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not (dataclasses.is_dataclass(self.config_type) and isinstance(self.config_type, type)):
            raise ValueError(f"config_type {self.config_type!r} must be a dataclass type (frozen, torch-free)")
        unknown = sorted(set(self.hooks) - set(HOOKS))
        if unknown:
            raise ValueError(f"unknown hook(s) {unknown}; valid hooks: {sorted(HOOKS)}")
        object.__setattr__(self, "hooks", frozenset(self.hooks))
        bad = [m for m in (*self.metrics, self.output_name) if not _NAME.fullmatch(m)]
        if bad or not self.metrics:
            raise ValueError(f"metric and output names must be identifiers ({bad or 'no metrics'}); name at "
                             "least one metric")
        if self.objective not in self.metrics:
            raise ValueError(f"objective {self.objective!r} is not one of the metrics {list(self.metrics)}")
        stray = sorted(set(self.higher_is_better) - set(self.metrics))
        if stray:
            raise ValueError(f"higher_is_better names {stray}, which are not metrics {list(self.metrics)}")
        low, high = self.output_range
        if not -1e6 < low < high < 1e6:
            raise ValueError(f"output_range {self.output_range} must be (low, high) with low < high, within 1e6")
        if not 1 <= self.output_channels <= 64:
            raise ValueError(f"output_channels {self.output_channels} must be in 1..64")
        if self.record_format is not None and "sample_from_record" not in self.hooks:
            raise ValueError("record_format is set but the sample_from_record hook is not declared")
        if not self.name:
            object.__setattr__(self, "name", self.output_name)

    def has(self, hook: str) -> bool:
        """Whether the family declared ``hook``; a name that is no hook at all is a bug in the caller."""
        if hook not in HOOKS:
            raise KeyError(f"{hook!r} is not a hook; valid hooks: {sorted(HOOKS)}")
        return hook in self.hooks

    @property
    def objective_metric(self) -> str:
        """The objective as its metric line names it (``validation:<objective>``)."""
        return f"validation:{self.objective}"

    @property
    def objective_type(self) -> str:
        return "Maximize" if self.objective in self.higher_is_better else "Minimize"

    def metric_names(self) -> list[str]:
        """Every metric line this family's training prints, in order."""
        return [*GENERIC_METRICS, *(f"{split}:{m}" for split in EVALUATED_SPLITS for m in self.metrics)]


def spec_module(family_path: str) -> str:
    """The module holding the spec of ``package.module:ClassName``: ``package.spec``."""
    module_name, sep, class_name = family_path.partition(":")
    package, dot, _ = module_name.rpartition(".")
    if not sep or not class_name or not dot or not package:
        raise ValueError(f"model family {family_path!r} must look like 'package.module:ClassName' (a module "
                         "inside a package, whose spec.py declares SPEC)")
    return f"{package}.spec"


def load_spec(family_path: str) -> FamilySpec:
    """The ``SPEC`` declared next to the family ``family_path``, imported without the family (no torch)."""
    name = spec_module(family_path)
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"model family {family_path!r}: cannot import its spec module {name!r} ({exc})") from exc
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, FamilySpec):
        raise ValueError(f"model family {family_path!r}: {name} has no SPEC = FamilySpec(...)")
    return spec
