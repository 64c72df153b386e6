"""A training-curve picture drawn with Pillow: train loss and the validation objective per epoch."""

from __future__ import annotations

from PIL import Image, ImageDraw

_W, _H, _PAD = 360, 240, 44
_BLUE, _RED, _GREY, _INK = (40, 90, 200), (200, 60, 40), (130, 130, 130), (20, 20, 20)


def _panel(title: str, epochs: list[int], values: list[float], colour, reference: float | None) -> Image.Image:
    img = Image.new("RGB", (_W, _H), "white")
    d = ImageDraw.Draw(img)
    lo = min(values + ([reference] if reference is not None else []))
    hi = max(values + ([reference] if reference is not None else []))
    lo, hi = min(lo, 0.0), hi * 1.05 if hi > 0 else 1.0
    x0, x1, y0, y1 = _PAD, _W - 12, _H - 28, 26
    span = max(epochs[-1] - epochs[0], 1)

    def xy(epoch: float, value: float) -> tuple[float, float]:
        return (x0 + (epoch - epochs[0]) / span * (x1 - x0), y0 - (value - lo) / max(hi - lo, 1e-12) * (y0 - y1))

    d.rectangle([x0, y1, x1, y0], outline=_INK)
    d.text((x0, 6), title, fill=_INK)
    for frac in (0.0, 0.5, 1.0):
        value = lo + frac * (hi - lo)
        d.text((4, xy(epochs[0], value)[1] - 6), f"{value:.3g}", fill=_INK)
    d.text((x0, y0 + 6), f"epoch {epochs[0]}", fill=_INK)
    d.text((x1 - 60, y0 + 6), f"epoch {epochs[-1]}", fill=_INK)
    if reference is not None:  # dashed: the constant answer
        y = xy(epochs[0], reference)[1]
        for x in range(x0, x1, 8):
            d.line([(x, y), (min(x + 4, x1), y)], fill=_GREY, width=1)
        d.text((x1 - 150, y + 3), f"constant answer {reference:.3g}", fill=_GREY)
    points = [xy(e, v) for e, v in zip(epochs, values, strict=True)]
    if len(points) > 1:
        d.line(points, fill=colour, width=2)
    for x, y in points:
        d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    return img


def draw_training_curve(history: list[dict[str, float]], metric: str, baseline: float | None) -> Image.Image | None:
    """Train loss (left) and ``metric`` (right, with the constant baseline dashed) per epoch; None if empty."""
    rows = [h for h in history if "train:loss" in h]
    if not rows:
        return None
    epochs = [int(h["epoch"]) for h in rows]
    panels = [_panel("train:loss", epochs, [h["train:loss"] for h in rows], _BLUE, None)]
    scored = [h for h in rows if metric in h]
    if scored:
        panels.append(_panel(metric, [int(h["epoch"]) for h in scored], [h[metric] for h in scored], _RED, baseline))
    out = Image.new("RGB", (_W * len(panels), _H), "white")
    for i, panel in enumerate(panels):
        out.paste(panel, (i * _W, 0))
    return out
