"""tuning.png and robustness.png: drawn from their figures, with intervals as scipy gives them."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from scipy import stats

from core.report.robustness_plot import mean_ci, render_robustness_png
from core.report.tuning_plot import render_tuning_png
from core.tuning.budget import expected_best

PNG = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    matplotlib_image = pytest.importorskip("matplotlib.image")
    array = matplotlib_image.imread(io.BytesIO(png))
    return array.shape[1], array.shape[0]


def test_tuning_png_draws_each_variants_curve() -> None:
    curves = {
        "plain": expected_best([0.80, 0.85, 0.90, 0.86, 0.88, 0.89]),
        "residual": expected_best([0.70, 0.92, 0.91, 0.60, 0.93, 0.94]),
    }
    png = render_tuning_png(curves, metric="val_accuracy", order=["plain", "residual"])
    assert png.startswith(PNG)
    assert _size(png) == (900, 500)
    empty = render_tuning_png({}, metric="val_accuracy", order=["plain"])
    assert empty.startswith(PNG)


def test_mean_ci_is_the_t_interval_clipped_to_the_accuracy_range() -> None:
    values = [0.91, 0.93, 0.92, 0.95]
    mean, lo, hi = mean_ci(values)
    sem = np.std(values, ddof=1) / math.sqrt(4)
    ref = stats.t.interval(0.95, 3, loc=np.mean(values), scale=sem)
    assert (mean, lo, hi) == pytest.approx((np.mean(values), ref[0], ref[1]))
    assert mean_ci([0.99, 1.0, 1.0])[2] == 1.0  # clipped at the top of the scale
    assert mean_ci([0.5, 0.5]) == (0.5, 0.5, 0.5)


def test_robustness_png_has_a_panel_per_corruption() -> None:
    rng = np.random.default_rng(0)
    scores = {}
    for v, base in (("a", 0.97), ("b", 0.95)):
        scores[(v, "clean", 0)] = list(base + rng.normal(0, 0.005, 3))
        for c in ("gaussian_noise", "rotate", "stripe"):
            for s in (2, 4):
                scores[(v, c, s)] = list(base - 0.05 * s + rng.normal(0, 0.01, 3))
    png = render_robustness_png(
        scores, order=["a", "b"], corruptions=["gaussian_noise", "rotate", "stripe"]
    )
    assert png.startswith(PNG)
    assert _size(png) == (960, 320)
