"""How every number of a report is written, in one place.

The verdict, the notes, the Markdown and text tables, the PNG and the dashboard
(``api/static/app.js`` mirrors these rules) all write numbers this way:

- accuracy levels in percent with two decimals (``97.53%``);
- accuracy differences in percentage points with two decimals (``+3.41 points``);
- loss levels and differences with four decimals (``0.1234``);
- p-values with three decimals, ``< 0.001`` below that; beside a sequential design's
  boundary, p-values and levels with two significant digits;
- effect sizes with two decimals; counts with thousands separators (``866,570``);
- shares (a size gap, a tolerance) in percent to three significant digits (``+0.0092%``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DASH",
    "LABELS",
    "count",
    "effect",
    "gap",
    "gap_interval",
    "level",
    "level_interval",
    "nominal",
    "p_value",
    "share",
]

DASH = "—"

LABELS = {
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "best_val_accuracy": "best validation accuracy",
}


def _accuracy(metric: str) -> bool:
    return metric != "test_loss"


def level(x: float | None, metric: str) -> str:
    """A level of the metric: ``97.53%`` or ``0.1234``."""
    if x is None:
        return DASH
    return f"{100 * x:,.2f}%" if _accuracy(metric) else f"{x:,.4f}"


def gap(x: float | None, metric: str, *, signed: bool = False, unit: bool = False) -> str:
    """A difference of the metric: ``3.41`` / ``+3.41`` (points), ``0.0123`` (loss)."""
    if x is None:
        return DASH
    sign = "+" if signed else ""
    text = f"{100 * x:{sign},.2f}" if _accuracy(metric) else f"{x:{sign},.4f}"
    if unit and _accuracy(metric):
        text += " point" if text.lstrip("+-") == "1.00" else " points"
    return text


def level_interval(ci: Sequence[float] | None, metric: str) -> str:
    """An interval of levels: ``93.81% to 95.03%``."""
    if ci is None:
        return DASH
    return f"{level(ci[0], metric)} to {level(ci[1], metric)}"


def gap_interval(ci: Sequence[float] | None, metric: str) -> str:
    """An interval of differences, signed: ``+2.90 to +3.92``."""
    if ci is None:
        return DASH
    return f"{gap(ci[0], metric, signed=True)} to {gap(ci[1], metric, signed=True)}"


def p_value(p: float | None) -> str:
    """``0.012`` or ``< 0.001``."""
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def nominal(x: float | None) -> str:
    """A p-value or level beside a sequential boundary, two significant digits: ``0.0095``,
    ``4.1e-08`` (three decimals would write both a p-value and its level as ``< 0.001``)."""
    if x is None:
        return DASH
    return f"{x:.2g}" if x >= 1e-4 else f"{x:.1e}"


def effect(x: float | None) -> str:
    """An effect size: ``-1.23``."""
    return DASH if x is None else f"{x:.2f}"


def count(n: int | None) -> str:
    """``866,570``."""
    return DASH if n is None else f"{n:,}"


def share(value: float, *, signed: bool = False) -> str:
    """A share as a percentage to three significant digits (0.05 -> ``5%``)."""
    return f"{100 * value:{'+' if signed else ''}.3g}%"
