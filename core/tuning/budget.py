"""The budget curve: the expected best validation score after n tuning trials, and its spread.

Dodge et al. ("Show Your Work", EMNLP 2019, section 3) estimate, from the N validation scores
one search produced, the expected maximum of n draws with replacement from their empirical
distribution: with the scores sorted ascending v(1) <= ... <= v(N),

    E[max_n] = sum_i v(i) * ((i/N)^n - ((i-1)/N)^n),

and its variance as E[max_n^2] - E[max_n]^2 from the same weights. For a loss (lower is
better) the same holds for the minimum, by symmetry. ``still_rising`` reads the curve's last
stretch: when doubling the budget from n/2 to n still gains more than the margin the
comparison calls negligible, the budget was not enough to call the comparison fair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BudgetPoint", "expected_best", "on_edge", "still_rising"]


@dataclass(frozen=True)
class BudgetPoint:
    """The expected best score after ``trials`` tuning trials, and its standard deviation."""

    trials: int
    mean: float
    std: float


def expected_best(scores: Sequence[float], *, maximize: bool = True) -> list[BudgetPoint]:
    """Dodge et al.'s expected best score for n = 1..N (N finite scores), with its spread."""
    values = np.sort(np.asarray([s for s in scores if math.isfinite(s)], dtype=np.float64))
    if not maximize:
        values = -values[::-1]
    n_scores = len(values)
    if n_scores == 0:
        return []
    ranks = np.arange(1, n_scores + 1, dtype=np.float64) / n_scores
    previous = np.arange(0, n_scores, dtype=np.float64) / n_scores
    out = []
    for n in range(1, n_scores + 1):
        weights = ranks**n - previous**n
        mean = float(weights @ values)
        variance = max(0.0, float(weights @ values**2) - mean**2)
        out.append(BudgetPoint(n, mean if maximize else -mean, math.sqrt(variance)))
    return out


def still_rising(curve: Sequence[BudgetPoint], margin: float, *, maximize: bool = True) -> bool:
    """Whether the last doubling of the budget (n/2 to n trials) still gained more than
    ``margin`` (False for fewer than 2 trials: there is no stretch to read)."""
    if len(curve) < 2:
        return False
    last = curve[-1]
    half = curve[max(0, len(curve) // 2 - 1)]
    gain = last.mean - half.mean if maximize else half.mean - last.mean
    return gain > margin


def on_edge(value: float, low: float, high: float, *, log: bool, share: float = 0.05) -> bool:
    """Whether a selected ``value`` lies within ``share`` of its range's width (on a log scale
    for a log-uniform knob) of either end: the space may have been too narrow."""
    if log:
        value, low, high = math.log(value), math.log(low), math.log(high)
    width = high - low
    return value - low <= share * width or high - value <= share * width
