"""Input drift: what images look like, summarised the same way in training, serving and the monitor job.

numpy only (serving, training and ``docker run IMAGE monitor`` all import it; nothing here needs torch).

A *summary* of one image is a set of histograms with fixed bin edges (so any two summaries can be added
and compared) plus a few scalars for people to read:

  brightness   luma (0.299 R + 0.587 G + 0.114 B, in [0, 1]) of every sampled pixel, 16 bins
  contrast     local contrast: |dx| + |dy| of luma between neighbouring pixels at the image's own
               resolution, on a log-spaced scale; noise moves mass right, blur and upscaling move it left
  red/green/blue  each channel's pixel values, 8 bins (colour casts)
  size         the shorter side, in buckets (the model was trained at one scale)

Pixels are sampled on a regular grid of at most ``GRID`` x ``GRID`` points, so the cost does not grow with
the image (0.7 ms at 256 x 256 on the 2-core CPU, and no more for larger images; ``python -m bench.drift_bench``).

An *aggregate* (``Aggregate``) is the sum of many summaries, each image weighing the same; the training
baseline is one, written as JSON with ``FORMAT_VERSION``.

The *drift score* of one image or of a set of images against a baseline is the **population stability
index** (PSI) per histogram, ``sum((q - p) * ln(q / p))`` over bins, with baseline ``p`` and observed ``q``
both smoothed by ``EPSILON`` per bin (so an empty bin costs a bounded amount instead of infinity), and the
score is the **maximum** over the input histograms. Maximum, not mean: a real shift usually shows in one
signal only (a darker camera moves brightness, a blurry lens moves contrast), and a mean would divide it by
the number of histograms. PSI is 0 for identical distributions; the usual reading for tabular data is
< 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted. One image is a noisy sample, so per-image scores of
in-distribution images are higher than a large set's; the thresholds used for alarms (``ALERT_PER_IMAGE``,
``ALERT_SET``) were measured on held-out vs shifted synthetic scenes (tests/unit/test_drift.py, README).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT_VERSION = 1
BASELINE_FILE = "drift_baseline.json"
GRID = 96
EPSILON = 1e-3
#: Alarm thresholds, chosen from measurements (see the module docstring and README "Monitoring").
ALERT_PER_IMAGE = 1.1
ALERT_SET = 0.25

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
EDGES: dict[str, tuple[float, ...]] = {
    "brightness": tuple(np.linspace(0.0, 1.0, 17).round(4).tolist()),
    "contrast": (0.0, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.06, 0.1, 0.16, 0.25, 0.4, 0.65, 3.0),
    "red": tuple(np.linspace(0.0, 1.0, 9).round(4).tolist()),
    "green": tuple(np.linspace(0.0, 1.0, 9).round(4).tolist()),
    "blue": tuple(np.linspace(0.0, 1.0, 9).round(4).tolist()),
    "size": (0.0, 48.0, 96.0, 160.0, 224.0, 320.0, 448.0, 640.0, 896.0, 1280.0, 1e9),
}
INPUT_HISTOGRAMS = tuple(EDGES)
SCALARS = ("brightness_mean", "contrast_std", "red_mean", "green_mean", "blue_mean", "height", "width")


class BaselineError(ValueError):
    """A baseline file is unreadable or from an incompatible version (says which and how to fix)."""


def histogram(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Fraction of ``values`` per bin; values outside the edges count in the first/last bin."""
    e = np.asarray(edges, dtype=np.float64)
    v = np.clip(np.asarray(values, dtype=np.float64).ravel(), e[0], e[-1])
    counts = np.histogram(v, bins=e)[0].astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def _grid(length: int) -> np.ndarray:
    """At most GRID evenly spaced indices in [0, length - 2] (each has a right/lower neighbour)."""
    last = max(length - 2, 0)
    return np.unique(np.linspace(0, last, min(GRID, last + 1)).round().astype(np.intp))


@dataclass(frozen=True)
class Summary:
    """One image: normalised histograms (name -> fractions) and scalars."""

    histograms: dict[str, np.ndarray]
    scalars: dict[str, float]
    edges: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: EDGES)


def summarize_image(image: np.ndarray) -> Summary:
    """The input summary of one HxWx3 image (uint8 0-255, or float 0-1)."""
    h, w = image.shape[:2]
    rows, cols = _grid(h), _grid(w)
    # Three sampled grids: the points, their right neighbours and their lower neighbours (native resolution).
    pick = np.ix_(rows, cols)
    px = _as_unit_float(image[pick])
    right = _as_unit_float(image[np.ix_(rows, np.minimum(cols + 1, w - 1))])
    down = _as_unit_float(image[np.ix_(np.minimum(rows + 1, h - 1), cols)])
    luma = px @ _LUMA
    contrast = np.abs(right @ _LUMA - luma) + np.abs(down @ _LUMA - luma)
    hists = {
        "brightness": histogram(luma, EDGES["brightness"]),
        "contrast": histogram(contrast, EDGES["contrast"]),
        "red": histogram(px[..., 0], EDGES["red"]),
        "green": histogram(px[..., 1], EDGES["green"]),
        "blue": histogram(px[..., 2], EDGES["blue"]),
        "size": histogram(np.array([min(h, w)]), EDGES["size"]),
    }
    means = px.reshape(-1, 3).mean(axis=0)
    scalars = {"brightness_mean": float(luma.mean()), "contrast_std": float(luma.std()),
               "red_mean": float(means[0]), "green_mean": float(means[1]), "blue_mean": float(means[2]),
               "height": float(h), "width": float(w)}
    return Summary(hists, scalars)


@dataclass
class Aggregate:
    """Many summaries added up, each weighing one: histogram sums, and per-scalar count/sum/sum of squares."""

    count: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    edges: dict[str, tuple[float, ...]] = field(default_factory=dict)
    scalar_sums: dict[str, list[float]] = field(default_factory=dict)  # name -> [sum, sum_sq, min, max]

    def add(self, summary: Summary) -> Aggregate:
        for name, fractions in summary.histograms.items():
            self.edges.setdefault(name, tuple(summary.edges[name]))
            self.sums[name] = self.sums.get(name, np.zeros(len(fractions))) + fractions
        for name, value in summary.scalars.items():
            s = self.scalar_sums.setdefault(name, [0.0, 0.0, math.inf, -math.inf])
            s[0], s[1], s[2], s[3] = s[0] + value, s[1] + value * value, min(s[2], value), max(s[3], value)
        self.count += 1
        return self

    def merge(self, other: Aggregate) -> Aggregate:
        out = Aggregate(self.count + other.count, dict(self.sums), {**other.edges, **self.edges},
                        {k: list(v) for k, v in self.scalar_sums.items()})
        for name, values in other.sums.items():
            out.sums[name] = out.sums.get(name, np.zeros(len(values))) + values
        for name, (s, sq, lo, hi) in other.scalar_sums.items():
            mine = out.scalar_sums.setdefault(name, [0.0, 0.0, math.inf, -math.inf])
            out.scalar_sums[name] = [mine[0] + s, mine[1] + sq, min(mine[2], lo), max(mine[3], hi)]
        return out

    def distribution(self, name: str) -> np.ndarray:
        return self.sums[name] / max(self.count, 1)

    def scalar_stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, (s, sq, lo, hi) in self.scalar_sums.items():
            n = max(self.count, 1)
            mean = s / n
            out[name] = {"mean": mean, "std": math.sqrt(max(sq / n - mean * mean, 0.0)), "min": lo, "max": hi}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count,
                "histograms": {k: {"edges": list(self.edges[k]), "sums": self.sums[k].round(6).tolist()}
                               for k in sorted(self.sums)},
                "scalars": {k: [round(x, 6) for x in v] for k, v in sorted(self.scalar_sums.items())}}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Aggregate:
        hists = doc.get("histograms", {})
        return cls(int(doc["count"]), {k: np.asarray(v["sums"], dtype=np.float64) for k, v in hists.items()},
                   {k: tuple(v["edges"]) for k, v in hists.items()},
                   {k: [float(x) for x in v] for k, v in doc.get("scalars", {}).items()})


def aggregate(summaries: Iterable[Summary]) -> Aggregate:
    agg = Aggregate()
    for summary in summaries:
        agg.add(summary)
    return agg


NORMAL_Z_EDGES = tuple(np.linspace(-1.0, 1.0, 21).round(4).tolist())


def summarize_normals(prediction: np.ndarray) -> Summary:
    """A prediction summary for HxWx3 unit-vector maps: the histogram of the z component (toward the viewer),
    i.e. of the cosine of the angle between the predicted normal and the viewing direction."""
    h, w = prediction.shape[:2]
    z = prediction[np.ix_(_grid(h + 1), _grid(w + 1))][..., 2]
    return Summary({"normal_z": histogram(z, NORMAL_Z_EDGES)}, {"normal_z_mean": float(np.mean(z))},
                   {"normal_z": NORMAL_Z_EDGES})


def psi(baseline: np.ndarray, observed: np.ndarray, epsilon: float = EPSILON) -> float:
    """Population stability index of ``observed`` against ``baseline`` (both fractions over the same bins)."""
    p = (np.asarray(baseline, dtype=np.float64) + epsilon)
    q = (np.asarray(observed, dtype=np.float64) + epsilon)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def psi_by_histogram(baseline: Aggregate, observed: Aggregate, names: Iterable[str] | None = None) -> dict[str, float]:
    """PSI per histogram present in both (a histogram missing from either is skipped, never an error)."""
    wanted = baseline.sums.keys() & observed.sums.keys() if names is None else names
    out = {}
    for name in sorted(wanted):
        if name in baseline.sums and name in observed.sums and baseline.edges[name] == observed.edges[name]:
            out[name] = psi(baseline.distribution(name), observed.distribution(name))
    return out


def drift_score(baseline: Aggregate, observed: Aggregate) -> float | None:
    """Max PSI over the histograms both share; None when they share none (nothing to compare)."""
    scores = psi_by_histogram(baseline, observed)
    return max(scores.values()) if scores else None


@dataclass(frozen=True)
class Baseline:
    """What ``train`` writes beside the weights: the inputs' aggregate and, optionally, the predictions'."""

    inputs: Aggregate
    predictions: Aggregate | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {"format_version": FORMAT_VERSION, "score": "max PSI over histograms",
                               "epsilon": EPSILON, "inputs": self.inputs.to_json()}
        if self.predictions is not None and self.predictions.count:
            doc["predictions"] = self.predictions.to_json()
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "the baseline") -> Baseline:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"{source} is not valid JSON ({exc}); retrain to rewrite it") from exc
        if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
            version = doc.get("format_version") if isinstance(doc, dict) else None
            raise BaselineError(f"{source} has format_version {version!r}; this image reads {FORMAT_VERSION}. "
                                "Retrain with this image to rewrite it, or delete it to serve without drift scores")
        try:
            preds = doc.get("predictions")
            return cls(Aggregate.from_json(doc["inputs"]), Aggregate.from_json(preds) if preds else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"{source} is malformed ({type(exc).__name__}: {exc}); retrain to rewrite it") \
                from exc
