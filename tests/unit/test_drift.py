"""model.drift: the summaries and the score on hand-computed cases, and on held-out vs shifted scenes.

Measured margins (the thresholds in model/drift.py come from these; README "Monitoring" has the table):
a baseline of 120 synthetic 96 px scenes; 40 held-out scenes score (max PSI of the set) 0.039, under
ALERT_SET / 4, while darkened (1.39), noisy (1.34), blurred (0.42), upscaled (13.7) and other-content (8.0)
sets score at least 1.5x ALERT_SET and 8x the held-out set. One image at a time is noisier: the mean
per-image score is 0.82 for held-out scenes, under 0.85 x ALERT_PER_IMAGE = 1.1, and 1.40 (noisy) to 13.7
(upscaled) for shifted ones, over 1.2x it; blurred images (0.98) are only caught as a set.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from model import drift
from model.normals.synthetic import render_scene


def test_histogram_counts_out_of_range_values_in_the_end_bins() -> None:
    got = drift.histogram(np.array([-1.0, 0.1, 0.6, 1.0, 2.0]), (0.0, 0.5, 1.0))
    assert got.tolist() == [0.4, 0.6]


def test_psi_is_zero_for_equal_distributions_and_matches_the_formula() -> None:
    assert drift.psi(np.array([0.25, 0.75]), np.array([0.25, 0.75])) == pytest.approx(0.0, abs=1e-12)
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    expected = 0.4 * math.log(1.8) + 0.4 * math.log(5.0)
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]), epsilon=0.0) == pytest.approx(expected)


def test_psi_of_an_empty_bin_is_bounded_by_the_smoothing() -> None:
    score = drift.psi(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert math.isfinite(score) and score == pytest.approx(2 / (1 + 2e-3) * math.log(1001))


def test_a_flat_grey_image_has_one_brightness_bin_no_contrast_and_its_size_bucket() -> None:
    s = drift.summarize_image(np.full((100, 200, 3), 128, dtype=np.uint8))
    assert s.histograms["brightness"].tolist() == [0.0] * 8 + [1.0] + [0.0] * 7  # 128/255 = 0.502 -> bin 8
    assert s.histograms["contrast"][0] == 1.0
    assert s.histograms["size"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]  # shorter side 100 in [96, 160)
    assert s.scalars["height"] == 100 and s.scalars["width"] == 200
    assert s.scalars["red_mean"] == pytest.approx(128 / 255, abs=1e-4)


def test_a_one_pixel_checkerboard_has_all_its_contrast_in_the_top_bin() -> None:
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    s = drift.summarize_image(np.repeat(board[..., None], 3, axis=2))
    assert s.histograms["contrast"][-1] == 1.0  # |dx| + |dy| = 2 everywhere
    assert s.histograms["brightness"][0] == pytest.approx(0.5, abs=0.02)


def test_uint8_and_unit_float_images_summarise_alike() -> None:
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    a, b = drift.summarize_image(image), drift.summarize_image(image.astype(np.float32) / 255)
    for name in drift.INPUT_HISTOGRAMS:
        np.testing.assert_allclose(a.histograms[name], b.histograms[name], atol=1e-9)


def test_a_non_rgb_array_is_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        drift.summarize_image(np.zeros((8, 8), dtype=np.uint8))


def test_merging_aggregates_equals_aggregating_everything_and_survives_json() -> None:
    rng = np.random.default_rng(1)
    summaries = [drift.summarize_image(rng.integers(0, 256, (40, 30 + i, 3), dtype=np.uint8)) for i in range(6)]
    whole = drift.aggregate(summaries)
    merged = drift.aggregate(summaries[:2]).merge(drift.aggregate(summaries[2:]))
    assert merged.count == whole.count == 6
    for name in whole.sums:
        np.testing.assert_allclose(merged.sums[name], whole.sums[name])
    for name, stats in whole.scalar_stats().items():
        assert merged.scalar_stats()[name] == pytest.approx(stats)
    baseline = drift.Baseline(whole, drift.aggregate([drift.summarize_normals(np.dstack([np.zeros((4, 4, 2)),
                                                                                          np.ones((4, 4))]))]))
    back = drift.Baseline.from_json(baseline.to_json())
    assert back.inputs.count == 6 and back.predictions is not None
    assert back.predictions.distribution("normal_z")[-1] == 1.0  # z = 1 lands in the top bin
    assert drift.drift_score(back.inputs, whole) == pytest.approx(0.0, abs=1e-5)


def test_a_baseline_of_another_format_version_is_refused_with_the_fix() -> None:
    with pytest.raises(drift.BaselineError, match=r"format_version 99.*Retrain"):
        drift.Baseline.from_json('{"format_version": 99}')
    with pytest.raises(drift.BaselineError, match="not valid JSON"):
        drift.Baseline.from_json("{")


def test_no_shared_histogram_means_no_score() -> None:
    assert drift.drift_score(drift.Aggregate(), drift.Aggregate()) is None


# -- in-distribution vs shifted ---------------------------------------------------------------------------


def _scenes(seed: int, count: int, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_scene(rng, size)[0] for _ in range(count)]


def _blur(image: np.ndarray) -> np.ndarray:
    f = image.astype(np.float32)
    for _ in range(2):  # two 3x3 box passes
        f = (f + np.roll(f, 1, 0) + np.roll(f, -1, 0)) / 3
        f = (f + np.roll(f, 1, 1) + np.roll(f, -1, 1)) / 3
    return f.round().astype(np.uint8)


@pytest.fixture(scope="module")
def scenes() -> tuple[drift.Aggregate, dict[str, list[np.ndarray]]]:
    baseline = drift.aggregate(drift.summarize_image(im) for im in _scenes(0, 120))
    held = _scenes(1, 40)
    rng = np.random.default_rng(7)
    sets = {
        "held-out": held,
        "darkened x0.6": [(im * 0.6).round().astype(np.uint8) for im in held],
        "noisy sd 20/255": [np.clip(im + rng.normal(0, 20, im.shape), 0, 255).astype(np.uint8) for im in held],
        "blurred": [_blur(im) for im in held],
        "upscaled 2x": [im.repeat(2, 0).repeat(2, 1) for im in held],
        "other content": [np.clip(np.cumsum(np.cumsum(rng.normal(0, 3, im.shape), 0), 1) / 50 + 128, 0, 255)
                          .astype(np.uint8) for im in held],
    }
    return baseline, sets


def _set_score(baseline: drift.Aggregate, images: list[np.ndarray]) -> float:
    score = drift.drift_score(baseline, drift.aggregate(drift.summarize_image(im) for im in images))
    assert score is not None
    return score


def test_held_out_scenes_score_under_a_quarter_of_the_set_threshold(scenes) -> None:
    baseline, sets = scenes
    assert _set_score(baseline, sets["held-out"]) < drift.ALERT_SET / 4


@pytest.mark.parametrize("shift", ["darkened x0.6", "noisy sd 20/255", "blurred", "upscaled 2x", "other content"])
def test_shifted_sets_score_clearly_over_the_set_threshold(scenes, shift: str) -> None:
    baseline, sets = scenes
    held = _set_score(baseline, sets["held-out"])
    shifted = _set_score(baseline, sets[shift])
    assert shifted > 1.5 * drift.ALERT_SET
    assert shifted > 8 * held


def test_the_mean_per_image_score_separates_held_out_from_darkened_and_noisy_images(scenes) -> None:
    baseline, sets = scenes

    def mean_per_image(images: list[np.ndarray]) -> float:
        return float(np.mean([_set_score(baseline, [im]) for im in images]))

    held = mean_per_image(sets["held-out"])
    assert held < 0.85 * drift.ALERT_PER_IMAGE
    for shift in ("darkened x0.6", "noisy sd 20/255", "upscaled 2x", "other content"):
        assert mean_per_image(sets[shift]) > 1.2 * drift.ALERT_PER_IMAGE, shift
