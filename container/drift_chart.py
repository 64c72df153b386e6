"""The drift report's picture: each histogram of the baseline (grey) beside the observed one (orange)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PANEL_W, PANEL_H, COLUMNS = 420, 230, 2
BASELINE_COLOUR, OBSERVED_COLOUR, ALERT_COLOUR = (150, 150, 150), (230, 120, 20), (200, 30, 30)


@dataclass(frozen=True)
class Panel:
    name: str
    edges: Sequence[float]
    baseline: np.ndarray
    observed: np.ndarray
    psi: float
    alert: bool


def _label(x: float) -> str:
    return f"{x:.3g}" if x < 1e6 else "inf"


def _draw_panel(draw: ImageDraw.ImageDraw, panel: Panel, left: int, top: int) -> None:
    colour = ALERT_COLOUR if panel.alert else (0, 0, 0)
    draw.text((left + 10, top + 6), f"{panel.name}   PSI {panel.psi:.3f}", fill=colour)
    plot_l, plot_t, plot_r, plot_b = left + 30, top + 26, left + PANEL_W - 12, top + PANEL_H - 28
    draw.rectangle((plot_l, plot_t, plot_r, plot_b), outline=(210, 210, 210))
    bins = len(panel.baseline)
    peak = float(max(panel.baseline.max(initial=0), panel.observed.max(initial=0), 1e-9))
    width = (plot_r - plot_l) / bins
    for i in range(bins):
        x0 = plot_l + i * width
        for j, (values, fill) in enumerate(((panel.baseline, BASELINE_COLOUR), (panel.observed, OBSERVED_COLOUR))):
            height = (plot_b - plot_t - 4) * float(values[i]) / peak
            bx0 = x0 + 1 + j * (width - 2) / 2
            draw.rectangle((bx0, plot_b - height, bx0 + (width - 2) / 2 - 1, plot_b), fill=fill)
    draw.text((plot_l, plot_b + 4), _label(panel.edges[0]), fill=(80, 80, 80))
    draw.text((plot_r - 30, plot_b + 4), _label(panel.edges[-1]), fill=(80, 80, 80))
    draw.text((left + 4, plot_t), f"{peak:.2f}", fill=(80, 80, 80))


def draw_report(panels: Sequence[Panel], title: str) -> Image.Image:
    rows = max(1, -(-len(panels) // COLUMNS))
    image = Image.new("RGB", (PANEL_W * COLUMNS, PANEL_H * rows + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill=(0, 0, 0))
    draw.text((10, 22), "grey: baseline (training)   orange: observed   red title: over the alert threshold",
              fill=(90, 90, 90))
    for k, panel in enumerate(panels):
        _draw_panel(draw, panel, (k % COLUMNS) * PANEL_W, 40 + (k // COLUMNS) * PANEL_H)
    return image
