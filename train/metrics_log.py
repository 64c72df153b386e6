"""Metric lines for CloudWatch / hyperparameter tuning, and the regexes that read them back.

Each epoch prints one line per metric, unbuffered, in exactly this shape:

    #metric epoch=3 validation:mean_angular_error=23.412100

Which lines a job prints comes from its family's spec (``FamilySpec.metric_names()``), and so do the
MetricDefinitions (:func:`definitions`): the launch and tune CLIs compute them for the family named in the
hyperparameters. ``train/metric_definitions.json`` is the built-in family's, for the console and the SageMaker
SDK (``python -m train.metrics_log`` regenerates it; a unit test fails when it is stale). Torch-free.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from model.spec import FamilySpec

DEFINITIONS_FILE = Path(__file__).with_name("metric_definitions.json")
_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
#: The API's limits: at most 40 definitions, Name 1-255 and Regex 1-500 characters.
MAX_DEFINITIONS, MAX_NAME, MAX_REGEX = 40, 255, 500


def format_metric(epoch: int, name: str, value: float) -> str:
    return f"#metric epoch={epoch} {name}={value:.6f}"


def emit(epoch: int, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        print(format_metric(epoch, name, value), file=sys.stdout, flush=True)


def regex_for(name: str) -> str:
    return rf"#metric epoch=\d+ {re.escape(name)}={_VALUE}"


def definitions(spec: FamilySpec) -> list[dict[str, str]]:
    """The MetricDefinitions that capture every metric line of ``spec``'s family, within the API limits."""
    defs = [{"Name": n, "Regex": regex_for(n)} for n in spec.metric_names()]
    too_long = [d["Name"] for d in defs if len(d["Name"]) > MAX_NAME or len(d["Regex"]) > MAX_REGEX]
    if len(defs) > MAX_DEFINITIONS or too_long:
        raise ValueError(f"the {spec.name} family's {len(defs)} metric lines exceed SageMaker's limits (at most "
                         f"{MAX_DEFINITIONS}, names up to {MAX_NAME} characters; too long: {too_long}); "
                         "declare fewer or shorter metrics in its spec")
    return defs


def load_definitions(path: Path = DEFINITIONS_FILE) -> list[dict[str, str]]:
    return json.loads(path.read_text())


if __name__ == "__main__":
    # Regenerates metric_definitions.json; the unit tests fail if the file and the built-in spec disagree.
    from model.normals.spec import SPEC

    defs = definitions(SPEC)
    DEFINITIONS_FILE.write_text(json.dumps(defs, indent=2) + "\n")
    print(f"wrote {len(defs)} definitions to {DEFINITIONS_FILE}")
