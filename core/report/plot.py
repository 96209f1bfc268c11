"""The report as a PNG: learning curves, the per-seed spread, and the paired differences
(``core.report.plot_paired``) side by side, the labelled answers under them.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so
it keeps no global state and can run in several api threads at once. Only succeeded trials
are drawn, as in the statistics. The figure is 1200x600 px (12x6 in at 100 dpi), 18 px taller
a line when the answers need more than four lines: no answer is ever cut off.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.report.build import TrialResult
from core.report.palette import variant_colour
from core.report.plot_paired import caption_lines, draw_caption, draw_paired
from core.status import TrialStatus

__all__ = ["figure", "render_png"]

_SIZE_IN = (12.0, 6.0)
_DPI = 100
_LINE_IN = 0.18  # one caption line (10 pt text and its spacing), in inches
_SPREAD_TITLE = "Per seed (dots), mean and 95% CI (diamond, bars)"
_LABELS = {
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "best_val_accuracy": "best validation accuracy",
}


def _colour(i: int) -> str:
    return variant_colour(i)  # the dashboard's colour for the same variant (core.report.palette)


def _curves(ax: Any, names: Sequence[str], trials: Sequence[TrialResult]) -> bool:
    """Mean line and min-max band of validation accuracy per epoch; False if nothing drawn."""
    drawn = False
    for i, name in enumerate(names):
        per_epoch: dict[int, list[float]] = {}
        for t in trials:
            if t.variant != name or t.status != TrialStatus.SUCCEEDED:
                continue
            for p in t.curve:
                if p.val_accuracy is not None and np.isfinite(p.val_accuracy):
                    per_epoch.setdefault(p.epoch, []).append(100.0 * p.val_accuracy)
        if not per_epoch:
            continue
        epochs = sorted(per_epoch)
        values = [per_epoch[e] for e in epochs]
        ax.fill_between(
            epochs, [min(v) for v in values], [max(v) for v in values], color=_colour(i), alpha=0.2
        )
        means = [float(np.mean(v)) for v in values]
        ax.plot(epochs, means, color=_colour(i), marker="o", markersize=3, label=name)
        drawn = True
    ax.set_title("Learning curves (mean, min-max band over seeds)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    if drawn:
        legend = ax.legend(loc="lower right", fontsize="small")
        for text in legend.get_texts():
            text.set_parse_math(False)  # a name is text, never mathtext
        ax.xaxis.get_major_locator().set_params(integer=True)
    return drawn


def _spread(ax: Any, report: Mapping[str, Any]) -> None:
    """Each seed's primary metric as a jittered dot, with the mean and 95% CI per variant."""
    metric = report["primary_metric"]
    scale = 1.0 if metric == "test_loss" else 100.0
    variants = report["variants"]
    for i, v in enumerate(variants):
        values = [scale * s["value"] for s in v["per_seed"] if s["value"] is not None]
        if not values:
            continue
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + jitter, values, color=_colour(i), alpha=0.6, s=22, zorder=2)
        mean = scale * v["mean"]
        ci = v["ci95"]
        yerr = None if ci is None else [[mean - scale * ci[0]], [scale * ci[1] - mean]]
        ax.errorbar(
            [i + 0.3], [mean], yerr=yerr, fmt="D", color="black", capsize=5, markersize=5, zorder=3
        )
    ax.set_xticks(
        range(len(variants)),
        [_tick(v) for v in variants],
        rotation=20 if len(variants) > 4 else 0,
    )
    for label in ax.get_xticklabels():
        label.set_parse_math(False)
    ax.set_xlim(-0.6, len(variants) - 0.4)
    unit = "" if metric == "test_loss" else " (%)"
    ax.set_ylabel(_LABELS.get(metric, metric) + unit)
    ax.set_title(_SPREAD_TITLE, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _tick(v: Mapping[str, Any]) -> str:
    """A variant's tick label: its name, and its tier when it has one."""
    tier = v.get("tier")
    return v["name"] if tier is None else f"{v['name']}\ntier {tier}"


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def figure(report: Mapping[str, Any], trials: Sequence[TrialResult], *, title: str) -> Figure:
    """The report's figure: learning curves, per-seed spread, paired differences, and the
    labelled answers under them."""
    # Every answer is drawn whole: more than four caption lines make the figure taller
    # (0.18 in a line) instead of being cut off.
    caption = caption_lines(report)
    extra = max(0, len(caption) - 4) * _LINE_IN
    height = _SIZE_IN[1] + extra
    fig = Figure(figsize=(_SIZE_IN[0], height), dpi=_DPI)
    FigureCanvasAgg(fig)
    left, right, paired = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.25, 1.0, 1.0]})
    names = [v["name"] for v in report["variants"]]
    has_data = any(v["n"] for v in report["variants"])
    if not _curves(left, names, trials):
        _empty(left, "No finished trials yet" if not has_data else "No validation curves")
    if has_data:
        _spread(right, report)
    else:
        _empty(right, "No finished trials yet")
        right.set_title(_SPREAD_TITLE, fontsize=10)
    draw_paired(paired, report)
    fig.suptitle(" ".join(title.split()), fontsize=14, parse_math=False)
    draw_caption(fig, caption, line_frac=_LINE_IN / height)
    # The caption's share of the height: 0.18 in a line over 0.92 in of axes labels.
    bottom = (0.92 + _LINE_IN * len(caption)) / height
    fig.subplots_adjust(left=0.05, right=0.99, top=1 - 0.72 / height, bottom=bottom, wspace=0.28)
    return fig


def render_png(report: Mapping[str, Any], trials: Sequence[TrialResult], *, title: str) -> bytes:
    """The report's figure (``figure``) as PNG bytes."""
    buffer = io.BytesIO()
    figure(report, trials, title=title).savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
