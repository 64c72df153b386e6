"""Reading an endpoint's last hours of CloudWatch metrics, as a table and (with Pillow) a PNG chart.

SageMaker's own metrics: ``AWS/SageMaker`` Invocations, Invocation4XXErrors, Invocation5XXErrors (sums),
ModelLatency and OverheadLatency (microseconds; p50/p90/p99) and ``/aws/sagemaker/Endpoints`` CPU, memory and
GPU utilisation (averages, percent); plus our ``InputDrift`` (mean per-image score) from the access-log filters.
boto3 only; Pillow is optional (the chart is skipped with a note without it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from container.aws.cloudwatch_plan import INSTANCE_NS, SAGEMAKER_NS, VARIANT, MonitorPlan

#: Candidate periods (s); the smallest giving at most MAX_ROWS rows is used.
PERIODS = (60, 300, 900, 3600, 21600, 86400)
MAX_ROWS = 36


@dataclass(frozen=True)
class Series:
    id: str
    namespace: str  # "sagemaker", "instance" or "custom"
    metric: str
    stat: str
    header: str
    scale: float = 1.0  # ModelLatency is in microseconds; shown in ms


SERIES = (
    Series("inv", "sagemaker", "Invocations", "Sum", "invocations"),
    Series("e4", "sagemaker", "Invocation4XXErrors", "Sum", "4xx"),
    Series("e5", "sagemaker", "Invocation5XXErrors", "Sum", "5xx"),
    *(Series(f"ml{p}", "sagemaker", "ModelLatency", f"p{p}", f"model p{p} ms", 1e-3) for p in (50, 90, 99)),
    *(Series(f"ol{p}", "sagemaker", "OverheadLatency", f"p{p}", f"overhead p{p} ms", 1e-3) for p in (50, 90, 99)),
    Series("cpu", "instance", "CPUUtilization", "Average", "cpu %"),
    Series("mem", "instance", "MemoryUtilization", "Average", "mem %"),
    Series("gpu", "instance", "GPUUtilization", "Average", "gpu %"),
    Series("drift", "custom", "InputDrift", "Average", "drift"),
)


def choose_period(hours: float) -> int:
    return next((p for p in PERIODS if hours * 3600 / p <= MAX_ROWS), PERIODS[-1])


def metric_queries(plan: MonitorPlan, period: int) -> list[dict[str, Any]]:
    dims = [{"Name": "EndpointName", "Value": plan.name}, {"Name": "VariantName", "Value": VARIANT}]
    namespaces = {"sagemaker": SAGEMAKER_NS, "instance": INSTANCE_NS, "custom": plan.namespace}
    queries = []
    for s in SERIES:
        metric: dict[str, Any] = {"Namespace": namespaces[s.namespace], "MetricName": s.metric}
        if s.namespace != "custom":
            metric["Dimensions"] = dims
        queries.append({"Id": s.id, "MetricStat": {"Metric": metric, "Period": period, "Stat": s.stat},
                        "Label": s.header, "ReturnData": True})
    return queries


def read_metrics(cloudwatch: Any, plan: MonitorPlan, start: dt.datetime, end: dt.datetime,
                 period: int) -> dict[str, dict[dt.datetime, float]]:
    """Series id -> {period start (UTC): value}, following NextToken."""
    out: dict[str, dict[dt.datetime, float]] = {s.id: {} for s in SERIES}
    kwargs: dict[str, Any] = {"MetricDataQueries": metric_queries(plan, period), "StartTime": start,
                              "EndTime": end, "ScanBy": "TimestampAscending"}
    while True:
        page = cloudwatch.get_metric_data(**kwargs)
        for result in page.get("MetricDataResults", []):
            for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                if value is not None:
                    out[result["Id"]][ts.astimezone(dt.UTC)] = float(value)
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def _cell(value: float | None, scale: float) -> str:
    if value is None:
        return "-"
    v = value * scale
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2f}"


def format_table(data: Mapping[str, Mapping[dt.datetime, float]]) -> str:
    """One row per period that has any value, one column per series; '-' where CloudWatch has no data."""
    times = sorted({t for values in data.values() for t in values})
    headers = ["time (UTC)", *(s.header for s in SERIES)]
    rows = [[t.strftime("%m-%d %H:%M"), *(_cell(data[s.id].get(t), s.scale) for s in SERIES)] for t in times]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if not rows:
        lines.append("(no data points in this window: no traffic yet, or the endpoint name is wrong)")
    return "\n".join(lines)


#: Chart panels: title and the series drawn in it.
PANELS: Sequence[tuple[str, Sequence[str]]] = (
    ("invocations / 4xx / 5xx per period", ("inv", "e4", "e5")),
    ("model latency p50 / p90 / p99 (ms)", ("ml50", "ml90", "ml99")),
    ("cpu / memory / gpu utilisation (%)", ("cpu", "mem", "gpu")),
    ("input drift (mean per-image score)", ("drift",)),
)
_COLOURS = ((31, 119, 180), (255, 127, 14), (214, 39, 40))


def draw_chart(data: Mapping[str, Mapping[dt.datetime, float]], start: dt.datetime, end: dt.datetime,
               title: str) -> Any:
    """A PNG-ready PIL image of the panels, or None when Pillow is not installed."""
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        return None
    w, h = 900, 220
    image = Image.new("RGB", (w, 30 + h * len(PANELS)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill=(0, 0, 0))
    scale = {s.id: s.scale for s in SERIES}
    span = max((end - start).total_seconds(), 1.0)
    for k, (panel_title, ids) in enumerate(PANELS):
        top = 30 + k * h
        left, right, bottom = 60, w - 20, top + h - 25
        draw.rectangle((left, top + 20, right, bottom), outline=(200, 200, 200))
        values = [v * scale[i] for i in ids for v in data[i].values()]
        peak = max(values, default=0.0) or 1.0
        draw.text((left, top + 4), f"{panel_title}   " + "  ".join(
            f"[{j + 1}] {i}" for j, i in enumerate(ids)), fill=(0, 0, 0))
        draw.text((5, top + 20), f"{peak:.3g}", fill=(90, 90, 90))
        for j, i in enumerate(ids):
            points = [(left + (right - left) * (t - start).total_seconds() / span,
                       bottom - (bottom - top - 24) * v * scale[i] / peak) for t, v in sorted(data[i].items())]
            if len(points) > 1:
                draw.line(points, fill=_COLOURS[j % 3], width=2)
            for x, y in points:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=_COLOURS[j % 3])
    return image
