"""``robustness.png``: accuracy against severity, one panel per corruption, one line per variant.

Each point is the mean over seeds with its 95% t interval (the per-seed accuracies are what
``/robustness`` serves); severity 0 is the clean test set, so the drop from clean reads
directly. Panels in the order the corruptions were asked for, four to a row. Drawn on a bare
Figure with the Agg canvas (no pyplot state).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from core.report.palette import variant_colour

__all__ = ["mean_ci", "render_robustness_png"]

Scores = Mapping[tuple[str, str, int], Sequence[float]]
"""Per-seed accuracies by (variant, corruption, severity); severity 0 is the clean set."""


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean and its 95% t interval, clipped to [0, 1] (accuracies); a single value or no
    spread gives a zero-width interval."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2 or float(x.std(ddof=1)) == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def render_robustness_png(
    scores: Scores, *, order: Sequence[str], corruptions: Sequence[str]
) -> bytes:
    """The PNG; ``order`` gives the variants' colours, ``corruptions`` the panels."""
    cols = min(4, max(1, len(corruptions)))
    rows = max(1, math.ceil(len(corruptions) / cols))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    for k, corruption in enumerate(corruptions):
        ax = fig.add_subplot(rows, cols, k + 1)
        for i, name in enumerate(order):
            levels = sorted(s for (v, c, s) in scores if v == name and c in (corruption, "clean"))
            points = []
            for s in levels:
                key = (name, "clean" if s == 0 else corruption, s)
                if scores.get(key):
                    points.append((s, *mean_ci(scores[key])))
            if not points:
                continue
            xs = [p[0] for p in points]
            ys = [100 * p[1] for p in points]
            err = [[100 * (p[1] - p[2]) for p in points], [100 * (p[3] - p[1]) for p in points]]
            ax.errorbar(
                xs,
                ys,
                yerr=err,
                color=variant_colour(i),
                marker="o",
                markersize=3,
                capsize=2,
                label=name,
            )
        ax.set_title(corruption.replace("_", " "), fontsize=10)
        ax.set_xlabel("severity (0 = clean)", fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k == 0:
            ax.legend(fontsize=8)
    fig.suptitle("Accuracy under corruption (mean over seeds, 95% t interval)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
