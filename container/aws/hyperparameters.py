"""What a training job will run, checked on the laptop: hyperparameters parsed like the container parses them,
and the MetricDefinitions of the family they name, both read from that family's torch-free spec."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from container.aws.common import ShipError
from model.spec import GENERIC_METRICS, FamilySpec, load_spec, spec_module
from train.config import DEFAULT_FAMILY, TrainConfig, split_hyperparameters
from train.metrics_log import definitions, regex_for


def hyperparameter_string(value: Any) -> str:
    """SageMaker takes strings only; booleans as true/false (the container accepts either spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def family_spec(family: str) -> FamilySpec | None:
    """The spec of the family named in the hyperparameters, read without torch; None when its package is not
    importable on this machine (a family that only exists in a custom image)."""
    module = spec_module(family) if ":" in family else ""
    try:
        found = importlib.util.find_spec(module) if module else None
    except ModuleNotFoundError:  # the package itself is missing
        found = None
    if found is None:
        return None
    try:
        return load_spec(family)
    except ValueError as exc:
        raise ShipError(f"model_family {family}: {exc}",
                        "declare SPEC = model.spec.FamilySpec(...) in the spec.py next to your family module "
                        "(README: Bring your own model)", exit_code=2) from None


def metric_definitions(family: str, log: TextIO | None = None) -> list[dict[str, str]]:
    """The MetricDefinitions of ``family``: computed from its spec, so its own metrics reach CloudWatch."""
    spec = family_spec(family)
    if spec is None:
        print(f"note: the spec of {family} is not importable here, so only the generic metrics "
              f"({', '.join(GENERIC_METRICS)}) are captured; run from the directory holding your package to "
              "capture the family's own", file=log or sys.stderr)
        return [{"Name": n, "Regex": regex_for(n)} for n in GENERIC_METRICS]
    return definitions(spec)


def validate_hyperparameters(raw: Mapping[str, Any]) -> dict[str, str]:
    """Check ``raw`` like the container will; return it as the string map CreateTrainingJob takes.

    Raises train.errors.UserError (what + fix) on unknown names or bad values. When the family's spec is not
    importable here only the training fields are checked; the family's own are checked when the job starts.
    """
    strings = {str(k): hyperparameter_string(v) for k, v in raw.items()}
    spec = family_spec(strings.get("model_family", DEFAULT_FAMILY))
    if spec is None:
        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        split_hyperparameters({k: v for k, v in strings.items() if k in train_names}, None)
    else:
        split_hyperparameters(strings, spec)
    return strings

