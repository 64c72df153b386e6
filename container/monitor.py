"""``docker run IMAGE monitor``: a drift report of what an endpoint saw against the training baseline.

    monitor [--input DIR] [--baseline PATH] [--output DIR] [--max-images N] [--fail-on-drift]

Defaults are a SageMaker Processing job's paths: ``--input /opt/ml/processing/input/capture`` (data-capture
``.jsonl`` files and/or ``.png``/``.jpg`` images, searched recursively), ``--baseline
/opt/ml/processing/input/baseline`` (``drift_baseline.json``, a model directory holding it, or a
``model.tar.gz``), ``--output /opt/ml/processing/output``. Writes ``drift_report.json`` and
``drift_report.png`` there; the last stdout line is the report's summary as JSON.
Exit codes: 0 done, 2 unusable input or baseline (with what and how to fix), 4 drift over the threshold
with ``--fail-on-drift``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from container.capture import Skipped, read_inputs
from model import drift

PROCESSING = Path("/opt/ml/processing")
REPORT_JSON, REPORT_PNG = "drift_report.json", "drift_report.png"
MAX_SKIPPED_LISTED = 20


class MonitorError(Exception):
    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}. Fix: {fix}")
        self.what, self.fix = what, fix


def load_baseline(path: Path) -> drift.Baseline:
    """The baseline in ``path``: the JSON file, a folder holding it (or a model.tar.gz), or a model.tar.gz."""
    candidates = [path] if path.is_file() else [path / drift.BASELINE_FILE, path / "model.tar.gz",
                                                 *sorted(path.rglob(drift.BASELINE_FILE))]
    for candidate in candidates:
        if candidate.is_file() and candidate.name.endswith(".tar.gz"):
            with tarfile.open(candidate) as tar:
                member = next((m for m in tar.getmembers() if Path(m.name).name == drift.BASELINE_FILE), None)
                if member is None:
                    continue
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
            return drift.Baseline.from_json(text, f"{candidate}:{member.name}")
        if candidate.is_file():
            return drift.Baseline.from_json(candidate.read_text(), str(candidate))
    raise MonitorError(f"no {drift.BASELINE_FILE} in {path} (looked for the file, a model directory and model.tar.gz)",
                       "pass --baseline with the model.tar.gz or model directory of a model trained by this image "
                       "(train writes the baseline beside model.pt); as a Processing job, map it to "
                       "/opt/ml/processing/input/baseline")


@dataclass
class Observations:
    summaries: list[drift.Summary] = field(default_factory=list)
    predictions: drift.Aggregate = field(default_factory=drift.Aggregate)
    skipped: list[Skipped] = field(default_factory=list)
    times: list[str] = field(default_factory=list)
    records: int = 0


def read(root: Path, max_images: int, with_predictions: bool) -> Observations:
    """Summaries of at most ``max_images`` inputs (and their answers) under ``root``."""
    if not root.exists():
        raise MonitorError(f"input {root} does not exist", "pass --input with a folder of data-capture .jsonl files "
                           "or images (as a Processing job: /opt/ml/processing/input/capture)")
    seen = Observations()
    for item in read_inputs(root):
        if isinstance(item, Skipped):
            seen.skipped.append(item)
            continue
        seen.records += 1
        seen.times.extend([item.time] if item.time else [])
        room = max(0, max_images - len(seen.summaries))
        seen.summaries.extend(drift.summarize_image(im) for im in item.images[:room])
        if with_predictions and seen.predictions.count < max_images:
            for prediction in item.predictions:
                seen.predictions.add(drift.summarize_normals(prediction))
    if not seen.summaries:
        first = f"; first: {seen.skipped[0].source}: {seen.skipped[0].reason}" if seen.skipped else ""
        raise MonitorError(f"no decodable image under {root} ({seen.records} records, {len(seen.skipped)} skipped"
                           f"{first})", "point --input at the endpoint's data-capture prefix (files *.jsonl) or a "
                           "folder of images")
    return seen


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in values.items()}


def report(baseline: drift.Baseline, seen: Observations) -> dict[str, Any]:
    """The report document (drift_report.json)."""
    observed = drift.aggregate(seen.summaries)
    psi = drift.psi_by_histogram(baseline.inputs, observed)
    per_image = np.array([drift.drift_score(baseline.inputs, drift.aggregate([s])) or 0.0 for s in seen.summaries])
    score = max(psi.values()) if psi else 0.0
    doc: dict[str, Any] = {
        "format_version": 1,
        "images": len(seen.summaries), "records": seen.records, "skipped": len(seen.skipped),
        "skipped_examples": [{"source": s.source, "reason": s.reason} for s in seen.skipped[:MAX_SKIPPED_LISTED]],
        "time_range": [min(seen.times), max(seen.times)] if seen.times else None,
        "baseline_images": baseline.inputs.count,
        "score": round(score, 4), "threshold": drift.ALERT_SET, "drifted": score > drift.ALERT_SET,
        "psi": _rounded(psi),
        "per_image": {**_rounded({"mean": float(per_image.mean()), "median": float(np.median(per_image)),
                                  "p90": float(np.percentile(per_image, 90)), "max": float(per_image.max())}),
                      "threshold": drift.ALERT_PER_IMAGE,
                      "share_over_threshold": round(float((per_image > drift.ALERT_PER_IMAGE).mean()), 4)},
        "scalars": {"observed": observed.scalar_stats(), "baseline": baseline.inputs.scalar_stats()},
        "predictions": None,
        "score_definition": "max over histograms of PSI(baseline, observed), epsilon-smoothed (model/drift.py)",
    }
    if seen.predictions.count and baseline.predictions is not None:
        ppsi = drift.psi_by_histogram(baseline.predictions, seen.predictions)
        doc["predictions"] = {"count": seen.predictions.count, "psi": _rounded(ppsi),
                              "score": round(max(ppsi.values()), 4) if ppsi else None}
    return doc


def panels(baseline: drift.Baseline, seen: Observations) -> list[Any]:
    """The chart's panels: each input histogram, then each prediction histogram."""
    from container.drift_chart import Panel

    out = []
    for prefix, base, observed in (("", baseline.inputs, drift.aggregate(seen.summaries)),
                                   ("prediction ", baseline.predictions, seen.predictions)):
        if base is None or not observed.count:
            continue
        psi = drift.psi_by_histogram(base, observed)
        out += [Panel(prefix + name, base.edges[name], base.distribution(name), observed.distribution(name),
                      psi[name], psi[name] > drift.ALERT_SET) for name in sorted(psi, key=_panel_order)]
    return out


def _panel_order(name: str) -> tuple[int, str]:
    order = drift.INPUT_HISTOGRAMS
    return (order.index(name) if name in order else len(order), name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor", description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, default=PROCESSING / "input" / "capture")
    p.add_argument("--baseline", type=Path, default=PROCESSING / "input" / "baseline")
    p.add_argument("--output", type=Path, default=PROCESSING / "output")
    p.add_argument("--max-images", type=int, default=20000, help="summarise at most this many images")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 4 when the score is over the threshold")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    from container.drift_chart import draw_report

    try:
        baseline = load_baseline(args.baseline)
    except drift.BaselineError as exc:
        raise MonitorError(str(exc), "use the model.tar.gz of a model trained by this image") from exc
    with_predictions = baseline.predictions is not None and "normal_z" in baseline.predictions.sums
    seen = read(args.input, args.max_images, with_predictions)
    doc = report(baseline, seen)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / REPORT_JSON).write_text(json.dumps(doc, indent=1) + "\n")
    title = (f"input drift: {doc['images']} images vs {doc['baseline_images']} training images; score "
             f"{doc['score']:.3f} (threshold {drift.ALERT_SET}) {'DRIFTED' if doc['drifted'] else 'ok'}")
    draw_report(panels(baseline, seen), title).save(args.output / REPORT_PNG)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        doc = run(args)
    except MonitorError as exc:
        print(f"error: {exc.what}\nfix: {exc.fix}", file=sys.stderr)
        return 2
    print(f"{doc['images']} images from {doc['records']} records ({doc['skipped']} skipped); score {doc['score']} "
          f"(threshold {drift.ALERT_SET}); report in {args.output}", file=sys.stderr)
    print(json.dumps({k: doc[k] for k in ("images", "score", "threshold", "drifted", "psi")}))
    return 4 if args.fail_on_drift and doc["drifted"] else 0


if __name__ == "__main__":
    sys.exit(main())
