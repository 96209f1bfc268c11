"""The statistics behind a pairwise conclusion, from scipy and statsmodels.

Every function here is pure and works on plain sequences of floats, so the simulation
tests can call them thousands of times and the unit tests can recompute each figure
independently.

- ``paired_t`` / ``welch_t``: the t-test of ``mean(a) - mean(b)`` (scipy ``ttest_rel`` /
  ``ttest_ind(equal_var=False)``) with the unadjusted 95% interval and an interval at any
  other level (the report's multiplicity-adjusted one).
- ``tost``: the two one-sided tests of equivalence within ``±margin`` (statsmodels
  ``ttost_paired`` / ``ttost_ind(usevar="unequal")``).
- ``hedges_g_paired`` / ``hedges_g_welch``: Hedges' g matching each test, with a 95%
  interval. Paired: ``g_z = J(n-1) * mean(d) / sd(d)`` (standardised by the SD of the
  per-seed differences, the standardiser of the paired t), interval from the noncentral
  t distribution of ``t = d_z * sqrt(n)``. Unpaired: Bonett's (2008) ``d`` standardised by
  ``sqrt((sa² + sb²) / 2)`` (no equal-variance assumption, like Welch), small-sample
  corrected by ``1 - 3 / (4 (na + nb) - 9)``, with Bonett's normal-approximation interval.
- ``mde`` / ``seeds_needed``: power analysis (statsmodels ``TTestPower`` /
  ``TTestIndPower``) at 80% power.
- ``pocock_spending`` / ``look_levels``: Lan-DeMets alpha spending with the Pocock-type
  function ``alpha * ln(1 + (e - 1) t)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

__all__ = [
    "POWER",
    "SEEDS_NEEDED_CAP",
    "TTest",
    "constant",
    "hedges_g_paired",
    "hedges_g_welch",
    "holm",
    "look_levels",
    "mde",
    "paired_t",
    "pocock_spending",
    "seeds_needed",
    "tost",
    "welch_t",
]

POWER = 0.8
"""The power of the minimum detectable difference and of the seeds-needed estimate."""

SEEDS_NEEDED_CAP = 10_000
"""Seeds-needed estimates are capped here (a gap of almost zero needs almost infinitely many)."""

_REL_TOL = 1e-12


@dataclass(frozen=True)
class TTest:
    """A t-test of ``mean(a) - mean(b)``; ``p``, ``ci`` and ``df`` are None without spread."""

    diff: float
    p: float | None
    df: float | None
    se: float | None
    ci95: tuple[float, float] | None
    ci_adjusted: tuple[float, float] | None


def constant(values: Sequence[float]) -> bool:
    """True when the sample has no spread (its range is within 1e-12 of its magnitude)."""
    lo, hi = min(values), max(values)
    return hi - lo <= _REL_TOL * max(1.0, abs(lo), abs(hi))


def _interval(diff: float, se: float, df: float, level: float) -> tuple[float, float]:
    half = float(stats.t.ppf(1.0 - (1.0 - level) / 2.0, df)) * se
    return (diff - half, diff + half)


def paired_t(a: Sequence[float], b: Sequence[float], adjusted_level: float = 0.95) -> TTest:
    """The paired t-test of the per-seed differences ``a[i] - b[i]`` (scipy ``ttest_rel``)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired t-test needs two or more pairs")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diff = float(d.mean())
    if constant(list(d)):
        return TTest(diff, None, None, None, None, None)
    res = stats.ttest_rel(a, b)
    df = float(res.df)
    se = float(d.std(ddof=1)) / math.sqrt(len(d))
    return TTest(
        diff,
        float(res.pvalue),
        df,
        se,
        _interval(diff, se, df, 0.95),
        _interval(diff, se, df, adjusted_level),
    )


def welch_t(a: Sequence[float], b: Sequence[float], adjusted_level: float = 0.95) -> TTest:
    """Welch's t-test (scipy ``ttest_ind``, unequal variances); none when both are constant."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least two values on each side")
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean())
    if constant(list(xa)) and constant(list(xb)):
        return TTest(diff, None, None, None, None, None)
    sa = 0.0 if constant(list(xa)) else float(xa.std(ddof=1))
    sb = 0.0 if constant(list(xb)) else float(xb.std(ddof=1))
    res = stats.ttest_ind_from_stats(
        xa.mean(), sa, len(xa), xb.mean(), sb, len(xb), equal_var=False
    )
    va, vb = sa * sa / len(xa), sb * sb / len(xb)
    df = (va + vb) ** 2 / (va * va / (len(xa) - 1) + vb * vb / (len(xb) - 1))
    se = math.sqrt(va + vb)
    return TTest(
        diff,
        float(res.pvalue),
        float(df),
        se,
        _interval(diff, se, df, 0.95),
        _interval(diff, se, df, adjusted_level),
    )


def tost(a: Sequence[float], b: Sequence[float], margin: float, *, paired: bool) -> float | None:
    """The TOST p-value of ``|mean(a) - mean(b)| < margin``; None when there is no spread."""
    if paired:
        d = [x - y for x, y in zip(a, b, strict=True)]
        if constant(d):
            return None
        p = ttost_paired(np.asarray(a, float), np.asarray(b, float), -margin, margin)[0]
    else:
        if constant(a) and constant(b):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = ttost_ind(np.asarray(a, float), np.asarray(b, float), -margin, margin, "unequal")[0]
    p = float(p)
    return p if math.isfinite(p) else None


def _j(df: float) -> float:
    """Hedges' exact small-sample correction J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))."""
    return math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def _nct_interval(t_obs: float, df: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The interval of δ whose noncentral t (ncp = δ sqrt(n)) puts t_obs at the tails."""
    tail = (1.0 - level) / 2.0

    def root(target: float) -> float:
        def f(delta: float) -> float:
            return float(stats.nct.cdf(t_obs, df, delta * math.sqrt(n))) - target

        span = abs(t_obs) / math.sqrt(n) + 10.0
        lo, hi = -span, span
        while f(lo) < 0:
            lo *= 2
        while f(hi) > 0:
            hi *= 2
        return float(optimize.brentq(f, lo, hi, xtol=1e-10))

    try:
        lo, hi = root(1.0 - tail), root(tail)
    except (ValueError, RuntimeError, OverflowError):
        lo = hi = math.nan
    if math.isfinite(lo) and math.isfinite(hi):
        return (lo, hi)
    # Far in the tail (|t| of tens or more at a few seeds) scipy's noncentral t CDF is NaN and
    # no root can be bracketed: fall back to the large-sample normal interval of δ
    # (Hedges & Olkin: var(d) ≈ 1/n + d²/(2 df)).
    d = t_obs / math.sqrt(n)
    half = float(stats.norm.ppf(1.0 - tail)) * math.sqrt(1.0 / n + d * d / (2.0 * df))
    return (d - half, d + half)


def hedges_g_paired(
    a: Sequence[float], b: Sequence[float]
) -> tuple[float, tuple[float, float]] | None:
    """Hedges' g_z of the per-seed differences and its 95% noncentral-t interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2 or constant(list(d)):
        return None
    dz = float(d.mean() / d.std(ddof=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = _nct_interval(dz * math.sqrt(n), n - 1, n)
    return _j(n - 1) * dz, ci


def hedges_g_welch(
    a: Sequence[float], b: Sequence[float]
) -> tuple[float, tuple[float, float]] | None:
    """Bonett's unequal-variance standardised difference, bias-corrected, with its 95% interval."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    va = 0.0 if constant(a) else float(np.var(a, ddof=1))
    vb = 0.0 if constant(b) else float(np.var(b, ddof=1))
    s2 = (va + vb) / 2.0
    if s2 <= 0.0:
        return None
    d = float(np.mean(a) - np.mean(b)) / math.sqrt(s2)
    var = (
        d * d * (va * va / (na - 1) + vb * vb / (nb - 1)) / (8 * s2 * s2)
        + (va / (na - 1) + vb / (nb - 1)) / s2
    )
    g = (1.0 - 3.0 / (4.0 * (na + nb) - 9.0)) * d
    half = float(stats.norm.ppf(0.975)) * math.sqrt(var)
    return g, (g - half, g + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels ``multipletests``), in the input order."""
    if not p_values:
        return []
    return [float(x) for x in multipletests(list(p_values), method="holm")[1]]


def _solve(analysis: TTestPower | TTestIndPower, **kwargs: float | str | None) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(np.asarray(analysis.solve_power(**kwargs)).item())
    except (ValueError, RuntimeError, ZeroDivisionError, FloatingPointError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def mde(sd: float, n_a: int, n_b: int, alpha: float, *, paired: bool) -> float | None:
    """The smallest true difference detected with 80% power at level ``alpha`` (two-sided).

    ``sd`` is the SD of the per-seed differences (paired) or ``sqrt((sa² + sb²) / 2)``
    (unpaired); the answer is in the metric's units.
    """
    if not sd > 0.0 or min(n_a, n_b) < 2:
        return None
    if paired:
        es = _solve(TTestPower(), effect_size=None, nobs=n_a, alpha=alpha, power=POWER)
    else:
        es = _solve(
            TTestIndPower(),
            effect_size=None,
            nobs1=n_a,
            alpha=alpha,
            power=POWER,
            ratio=n_b / n_a,
        )
    return None if es is None else es * sd


def seeds_needed(
    diff: float, sd: float, margin: float, alpha: float, *, paired: bool
) -> int | None:
    """Seeds per variant that would decide the pair with 80% power at the observed spread.

    The smaller of: the seeds to detect ``|diff|`` (two-sided, level ``alpha``) and the seeds
    for the TOST to show ``|diff| < margin`` (each one-sided test at level ``alpha``; only
    when ``|diff| < margin``). Capped at ``SEEDS_NEEDED_CAP``; None without spread.
    """
    if not sd > 0.0:
        return None
    candidates: list[float] = []
    gap = abs(diff)
    if gap > 0.0:
        if paired:
            n = _solve(TTestPower(), effect_size=gap / sd, nobs=None, alpha=alpha, power=POWER)
        else:
            n = _solve(TTestIndPower(), effect_size=gap / sd, nobs1=None, alpha=alpha, power=POWER)
        if n is not None:
            candidates.append(n)
    if gap < margin:
        es = (margin - gap) / sd
        if paired:
            n = _solve(
                TTestPower(),
                effect_size=es,
                nobs=None,
                alpha=alpha,
                power=POWER,
                alternative="larger",
            )
        else:
            n = _solve(
                TTestIndPower(),
                effect_size=es,
                nobs1=None,
                alpha=alpha,
                power=POWER,
                alternative="larger",
            )
        if n is not None:
            candidates.append(n)
    if not candidates:
        return SEEDS_NEEDED_CAP
    return int(min(SEEDS_NEEDED_CAP, max(2, math.ceil(min(candidates) - 1e-9))))


def pocock_spending(t: float, alpha: float) -> float:
    """Lan-DeMets Pocock-type spending: the alpha spent by information fraction ``t``."""
    t = min(1.0, max(0.0, t))
    return alpha * math.log(1.0 + (math.e - 1.0) * t)


def look_levels(ns: Sequence[int], alpha: float) -> list[float]:
    """Each look's own level: the increment of spent alpha, ``t_k = ns[k] / ns[-1]``.

    Testing look k at its increment and taking the union over looks keeps the family-wise
    error at most ``alpha`` whatever the stopping rule (Bonferroni over looks).
    """
    spent = [pocock_spending(n / ns[-1], alpha) for n in ns]
    return [s - (spent[i - 1] if i else 0.0) for i, s in enumerate(spent)]
