"""Words the verdict and the notes share: the metric's label, plurals, a variant by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.report import format as fmt

__all__ = ["RATIO_LIMIT", "Report", "by", "join", "label", "plural", "seeds", "variant"]

RATIO_LIMIT = 2.0
"""Parameter or FLOP counts further apart than this factor get a fairness note."""

Report = Mapping[str, Any]


def label(report: Report) -> str:
    m = str(report["primary_metric"])
    return fmt.LABELS.get(m, m.replace("_", " "))


def plural(k: int, word: str) -> str:
    return f"{k:,} {word}" + ("" if k == 1 else "s")


def seeds(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return plural(lo, "seed") if lo == hi else f"{lo} to {hi} seeds"


def join(parts: Sequence[str], word: str = "and") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def by(report: Report, x: float) -> str:
    """``3.41 points of test accuracy`` / ``0.0123 in test loss``."""
    m = report["primary_metric"]
    if m == "test_loss":
        return f"{fmt.gap(x, m)} in {label(report)}"
    return f"{fmt.gap(x, m, unit=True)} of {label(report)}"


def variant(report: Report, name: str) -> Mapping[str, Any]:
    return next(v for v in report["variants"] if v["name"] == name)
