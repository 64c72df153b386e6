"""Metric lines for CloudWatch / hyperparameter tuning, and the regexes that read them back.

Each epoch prints one line per metric, unbuffered, in exactly this shape:

    #metric epoch=3 validation:mean_angular_error=23.412100

`train/metric_definitions.json` holds the matching MetricDefinitions (≤ 40, each regex ≤ 500 chars);
tests check the regexes against real training output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DEFINITIONS_FILE = Path(__file__).with_name("metric_definitions.json")
_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def format_metric(epoch: int, name: str, value: float) -> str:
    return f"#metric epoch={epoch} {name}={value:.6f}"


def emit(epoch: int, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        print(format_metric(epoch, name, value), file=sys.stdout, flush=True)


def regex_for(name: str) -> str:
    return rf"#metric epoch=\d+ {re.escape(name)}={_VALUE}"


def load_definitions() -> list[dict[str, str]]:
    return json.loads(DEFINITIONS_FILE.read_text())


def metric_names() -> list[str]:
    stats = ["mean_angular_error", "median_angular_error", "within_11.25deg", "within_22.5deg", "within_30deg"]
    names = ["train:loss", "train:images_per_second", "validation:loss", "test:loss"]
    names += [f"{split}:{s}" for split in ("validation", "test") for s in stats]
    return names


if __name__ == "__main__":
    # Regenerates metric_definitions.json; the unit tests fail if the file and this code disagree.
    defs = [{"Name": n, "Regex": regex_for(n)} for n in metric_names()]
    DEFINITIONS_FILE.write_text(json.dumps(defs, indent=2) + "\n")
    print(f"wrote {len(defs)} definitions to {DEFINITIONS_FILE}")
