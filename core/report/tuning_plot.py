"""``tuning.png``: the expected best validation score against the tuning budget, per variant.

One line per variant (its colour from ``core.report.palette``) with a band of one standard
deviation (Dodge et al.'s estimator, ``core.tuning.budget``), and the budget spent marked, so a
reader sees at once whether a variant's curve had flattened by the end (the budget was enough)
or was still rising. Drawn on a bare Figure with the Agg canvas (no pyplot state), 900x500 px.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from core.report.palette import variant_colour
from core.tuning.budget import BudgetPoint

__all__ = ["render_tuning_png"]


def render_tuning_png(
    curves: Mapping[str, Sequence[BudgetPoint]],
    *,
    metric: str,
    order: Sequence[str],
    title: str = "",
) -> bytes:
    """The PNG of each variant's budget curve; ``order`` gives the variants' colours."""
    fig = Figure(figsize=(9.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    percent = metric.endswith("accuracy")
    scale = 100.0 if percent else 1.0
    drawn = False
    for i, name in enumerate(order):
        curve = curves.get(name) or []
        if not curve:
            continue
        n = [p.trials for p in curve]
        mean = [scale * p.mean for p in curve]
        lo = [scale * (p.mean - p.std) for p in curve]
        hi = [scale * (p.mean + p.std) for p in curve]
        colour = variant_colour(i)
        ax.fill_between(n, lo, hi, color=colour, alpha=0.15)
        ax.plot(n, mean, color=colour, marker="o", markersize=3, label=f"{name} ({n[-1]} trials)")
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no tuning trial has finished yet", ha="center", va="center")
        ax.set_axis_off()
    else:
        ax.set_xlabel("tuning trials (budget)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a budget counts whole trials
        label = metric.replace("_", " ") + (" (%)" if percent else "")
        ax.set_ylabel(f"expected best {label}")
        ax.legend(loc="lower right" if percent or metric != "val_loss" else "upper right")
        ax.grid(alpha=0.3)
    # Wrapped: a comparison's name is up to 200 characters, wider than the figure.
    heading = title or "Expected best validation score by tuning budget (mean ± 1 SD)"
    ax.set_title(textwrap.fill(heading, 90), fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
