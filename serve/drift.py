"""Per-request monitoring: the image size and, when the model directory has a baseline, drift scores.

``RequestMonitor.load(model_dir, registry)`` reads ``drift_baseline.json`` once (at app creation); each
prediction then costs one input summary per image (measured at 256 x 256 on the 2-core CPU: 0.95 ms for both
summaries and scores against 84 ms of inference, 1.1%; ``python -m bench.drift_bench``) and, if the family
summarises predictions, one prediction summary.
``observe`` returns the fields for the access-log line and feeds the Prometheus histograms:

  image_pixels       H x W of the request's largest image (always)
  input_drift        max over the request's images of the image's drift score (model/drift.py)
  prediction_drift   the same for the predictions, against the validation predictions in the baseline

No baseline (or an unreadable one: logged once as a warning) means no drift fields and no error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from model import drift

log = logging.getLogger(__name__)

_DRIFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)


class RequestMonitor:
    def __init__(self, baseline: drift.Baseline | None, registry: CollectorRegistry) -> None:
        self.baseline = baseline
        self.input_drift = Histogram("serve_input_drift", "Per-image input drift score (max PSI vs the training "
                                     "baseline)", buckets=_DRIFT_BUCKETS, registry=registry)
        self.prediction_drift = Histogram("serve_prediction_drift", "Per-image prediction drift score (max PSI vs "
                                          "the validation predictions)", buckets=_DRIFT_BUCKETS, registry=registry)

    @classmethod
    def load(cls, model_dir: Path, registry: CollectorRegistry) -> RequestMonitor:
        path = Path(model_dir) / drift.BASELINE_FILE
        baseline = None
        if path.is_file():
            try:
                baseline = drift.Baseline.from_json(path.read_text(), str(path))
            except (OSError, drift.BaselineError) as exc:
                log.warning("serving without drift scores: %s", exc)
        return cls(baseline, registry)

    def observe(self, images: Sequence[np.ndarray], predictions: Sequence[np.ndarray], family: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"image_pixels": max((int(im.shape[0]) * int(im.shape[1]) for im in images),
                                                      default=0)}
        if self.baseline is None or not images:
            return fields
        scores = [drift.drift_score(self.baseline.inputs, drift.aggregate([drift.summarize_image(im)]))
                  for im in images]
        fields.update(_record(scores, "input_drift", self.input_drift))
        if self.baseline.predictions is not None and family.spec.has("summarize_prediction"):
            summaries = [family.summarize_prediction(p) for p in predictions]
            pscores = [None if s is None else drift.drift_score(self.baseline.predictions, drift.aggregate([s]))
                       for s in summaries]
            fields.update(_record(pscores, "prediction_drift", self.prediction_drift))
        return fields


def _record(scores: Sequence[float | None], name: str, histogram: Histogram) -> dict[str, float]:
    known = [s for s in scores if s is not None]
    for score in known:
        histogram.observe(score)
    return {name: round(max(known), 4)} if known else {}
