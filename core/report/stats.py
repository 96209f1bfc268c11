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
  corrected by ``1 - 3 / (4 (na + nb) - 9)``, with Bonett's normal-approximation interval
  (centred on the unadjusted d, as Bonett computes it).
- ``mde`` / ``seeds_needed``: power analysis (statsmodels ``TTestPower`` /
  ``TTestIndPower``) at 80% power.
- ``pair_p`` / ``pair_tost``: the pair's p-values when the per-seed differences have no
  spread (the t-test is undefined there): the exact sign test of the constant difference
  (paired; scipy ``binomtest``) or the exact Mann-Whitney test (unpaired, both sides
  constant), so a constant gap is judged by one rule whether it is inside the margin or
  beyond it: decided once the seeds are enough for the exact test, inconclusive before.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

__all__ = [
    "MIN_SEEDS",
    "POWER",
    "SEEDS_NEEDED_CAP",
    "TTest",
    "constant",
    "hedges_g_paired",
    "hedges_g_welch",
    "holm",
    "look_p_values",
    "mde",
    "pair_p",
    "pair_tost",
    "paired_t",
    "seeds_needed",
    "tost",
    "tost_interval",
    "welch_t",
]

MIN_SEEDS = 3
"""A variant with fewer finished seeds than this is never tested: no p-value, no
conclusion but ``untested``, no tier, and it ranks after every tested variant."""

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
    # scipy.special.stdtrit is scipy.stats.t.ppf without its per-call overhead.
    half = float(special.stdtrit(df, 1.0 - (1.0 - level) / 2.0)) * se
    return (diff - half, diff + half)


def paired_t(
    a: Sequence[float],
    b: Sequence[float],
    adjusted_level: float = 0.95,
    interval_level: float = 0.95,
) -> TTest:
    """The paired t-test of the per-seed differences ``a[i] - b[i]`` (scipy ``ttest_rel``);
    ``ci95`` is at ``interval_level`` (0.95 but in an adaptive design's repeated interval)."""
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
        _interval(diff, se, df, interval_level),
        _interval(diff, se, df, adjusted_level),
    )


def welch_t(
    a: Sequence[float],
    b: Sequence[float],
    adjusted_level: float = 0.95,
    interval_level: float = 0.95,
) -> TTest:
    """Welch's t-test (scipy ``ttest_ind``, unequal variances); none when both are constant."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least two values on each side")
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(xa.mean() - xb.mean())
    if constant(list(xa)) and constant(list(xb)):
        return TTest(diff, None, None, None, None, None)
    sa = 0.0 if constant(list(xa)) else float(xa.std(ddof=1))
    sb = 0.0 if constant(list(xb)) else float(xb.std(ddof=1))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind_from_stats(
            xa.mean(), sa, len(xa), xb.mean(), sb, len(xb), equal_var=False
        )
        va, vb = np.float64(sa) ** 2 / len(xa), np.float64(sb) ** 2 / len(xb)
        df = float((va + vb) ** 2 / (va * va / (len(xa) - 1) + vb * vb / (len(xb) - 1)))
        se = float(np.sqrt(va + vb))
    if not all(map(math.isfinite, (df, se, float(res.pvalue), diff))) or se == 0.0:
        return TTest(diff, None, None, None, None, None)  # beyond float range: no test
    return TTest(
        diff,
        float(res.pvalue),
        float(df),
        se,
        _interval(diff, se, df, interval_level),
        _interval(diff, se, df, adjusted_level),
    )


def tost_interval(t: TTest, alpha: float = 0.05) -> tuple[float, float] | None:
    """The ``1 - 2 alpha`` interval of the difference (90% for a 5% TOST): it lies inside
    ``±margin`` exactly when both one-sided tests reject."""
    if t.se is None or t.df is None:
        return None
    return _interval(t.diff, t.se, t.df, 1.0 - 2.0 * alpha)


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


def look_p_values(
    a: Sequence[float], b: Sequence[float], margin: float, *, paired: bool
) -> tuple[float | None, float | None, float]:
    """(p, TOST p, diff) of the pair: the same tests as ``paired_t``/``welch_t``, ``pair_p``
    and ``pair_tost`` (the unit tests compare them), written with scipy.special because the
    sequential replay runs them at every look of every pair."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired:
        d = xa - xb
        diff, n = float(d.mean()), len(d)
        if constant(list(d)):
            return _exact(a, b, margin, paired, diff)
        se, df = float(d.std(ddof=1)) / math.sqrt(n), n - 1.0
    else:
        diff = float(xa.mean() - xb.mean())
        ca, cb = constant(list(xa)), constant(list(xb))
        if ca and cb:
            return _exact(a, b, margin, paired, diff)
        va = 0.0 if ca else float(xa.var(ddof=1)) / len(xa)
        vb = 0.0 if cb else float(xb.var(ddof=1)) / len(xb)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va * va / (len(xa) - 1) + vb * vb / (len(xb) - 1))
    if not (se > 0.0 and math.isfinite(se) and math.isfinite(df)):
        return None, None, diff
    p = 2.0 * float(special.stdtr(df, -abs(diff) / se))
    lower = float(special.stdtr(df, -(diff + margin) / se))  # H0: diff <= -margin
    upper = float(special.stdtr(df, (diff - margin) / se))  # H0: diff >= margin
    return p, max(lower, upper), diff


def _exact(
    a: Sequence[float], b: Sequence[float], margin: float, paired: bool, diff: float
) -> tuple[float | None, float | None, float]:
    t = TTest(diff, None, None, None, None, None)
    return pair_p(a, b, t, paired=paired), pair_tost(a, b, margin, paired), diff


def pair_p(a: Sequence[float], b: Sequence[float], t: TTest, *, paired: bool) -> float | None:
    """The pair's two-sided p-value: the t-test's, or without spread the exact sign test of a
    constant non-zero per-seed difference (paired) or the exact Mann-Whitney test of two
    constant sides (unpaired); None when there is no difference at all."""
    if t.p is not None:
        return t.p
    if paired:
        d = [x - y for x, y in zip(a, b, strict=True)]
        if d[0] == 0.0:
            return None
        return float(stats.binomtest(len(d), len(d), 0.5).pvalue)
    if t.diff == 0.0:
        return None
    return float(stats.mannwhitneyu(a, b, method="exact").pvalue)


def pair_tost(a: Sequence[float], b: Sequence[float], margin: float, paired: bool) -> float | None:
    """The TOST p-value: ``tost``'s, or without spread its exact counterpart, each one-sided
    test a sign test (paired) or a Mann-Whitney test (unpaired) of the shifted samples."""
    p = tost(a, b, margin, paired=paired)
    if p is not None:
        return p
    if paired:
        d = [x - y for x, y in zip(a, b, strict=True)]
        n = len(d)
        inside = sum(-margin < x < margin for x in d)
        return float(stats.binomtest(inside, n, 0.5, alternative="greater").pvalue)
    lower = stats.mannwhitneyu(a, [x - margin for x in b], alternative="greater", method="exact")
    upper = stats.mannwhitneyu(a, [x + margin for x in b], alternative="less", method="exact")
    return float(max(lower.pvalue, upper.pvalue))


def _j(df: float) -> float:
    """Hedges' exact small-sample correction J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2))."""
    return math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)


def _nct_interval(t_obs: float, df: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The interval of δ whose noncentral t (ncp = δ sqrt(n)) puts t_obs at the tails."""
    tail = (1.0 - level) / 2.0
    d = t_obs / math.sqrt(n)
    se = math.sqrt(1.0 / n + d * d / (2.0 * n))

    def cdf(delta: float) -> float:
        # scipy.special.nctdtr is scipy.stats.nct.cdf without its per-call overhead; far in
        # the tails it can answer NaN, where the limit is 0 (ncp above t) or 1 (below).
        nc = delta * math.sqrt(n)
        value = float(special.nctdtr(df, nc, t_obs))
        return value if math.isfinite(value) else (0.0 if nc > t_obs else 1.0)

    def root(target: float) -> float:
        lo, hi = d - 4.0 * se - 0.5, d + 4.0 * se + 0.5
        while cdf(lo) - target < 0:
            lo -= 4.0 * se + 1.0
        while cdf(hi) - target > 0:
            hi += 4.0 * se + 1.0
        return float(optimize.brentq(lambda x: cdf(x) - target, lo, hi, xtol=1e-9))

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
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, tuple[float, float]] | None:
    """Hedges' g_z of the per-seed differences and its noncentral-t interval at ``level``."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2 or constant(list(d)):
        return None
    dz = float(d.mean() / d.std(ddof=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = _nct_interval(dz * math.sqrt(n), n - 1, n, level)
    return _j(n - 1) * dz, ci


def hedges_g_welch(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, tuple[float, float]] | None:
    """Bonett's unequal-variance standardised difference, bias-corrected, with its interval."""
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
    half = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0)) * math.sqrt(var)
    # Bonett's interval is centred on the unadjusted d (his statpsych ``ci.stdmean2``); the
    # bias adjustment is for the point estimate only.
    return g, (d - half, d + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order.

    The step-down of statsmodels ``multipletests(method="holm")`` (the unit tests compare
    the two), written out with numpy because statsmodels runs a full ``gc.collect()`` on
    every call: 100+ ms in the api's process, for every report request.
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (p.size - np.arange(p.size)) * p[order]))
    out = np.empty_like(p)
    out[order] = stepped
    return [float(x) for x in out]


def _solve(analysis: TTestPower | TTestIndPower, **kwargs: float | str | None) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(np.asarray(analysis.solve_power(**kwargs)).item())
    except (ValueError, RuntimeError, ZeroDivisionError, FloatingPointError):
        return None
    return value if math.isfinite(value) and value > 0 else None


@functools.lru_cache(maxsize=4096)
def _mde_effect(n_a: int, n_b: int, alpha: float, paired: bool) -> float | None:
    if paired:
        return _solve(TTestPower(), effect_size=None, nobs=n_a, alpha=alpha, power=POWER)
    return _solve(
        TTestIndPower(), effect_size=None, nobs1=n_a, alpha=alpha, power=POWER, ratio=n_b / n_a
    )


def mde(sd: float, n_a: int, n_b: int, alpha: float, *, paired: bool) -> float | None:
    """The smallest true difference detected with 80% power at level ``alpha`` (two-sided).

    ``sd`` is the SD of the per-seed differences (paired) or ``sqrt((sa² + sb²) / 2)``
    (unpaired); the answer is in the metric's units.
    """
    if not sd > 0.0 or min(n_a, n_b) < 2:
        return None
    es = _mde_effect(n_a, n_b, alpha, paired)
    return None if es is None else es * sd


def _power(es: float, n: np.ndarray, alpha: float, *, paired: bool, alternative: str) -> np.ndarray:
    """The t-test's power at each n per variant: statsmodels' ``ttest_power`` formula
    (``TTestPower`` / ``TTestIndPower`` with ratio 1; the unit tests compare them) on
    scipy.special's noncentral t, which is fast on arrays."""
    n = n.astype(float)
    if paired:
        df, nc = n - 1.0, es * np.sqrt(n)
    else:
        df, nc = 2.0 * n - 2.0, es * np.sqrt(n / 2.0)
    if alternative == "two-sided":
        crit = special.stdtrit(df, 1.0 - alpha / 2.0)
        power = 1.0 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit)
        normal = special.ndtr(nc - crit) + special.ndtr(-nc - crit)
    else:
        crit = special.stdtrit(df, 1.0 - alpha)
        power = 1.0 - special.nctdtr(df, nc, crit)
        normal = special.ndtr(nc - crit)
    # Far in a tail scipy's noncentral t can answer NaN; there the normal limit is exact
    # enough (large nc means many seeds, so many degrees of freedom).
    return np.asarray(np.where(np.isfinite(power), power, normal), dtype=float)


def _first_n(es: float, alpha: float, *, paired: bool, alternative: str) -> int | None:
    """The smallest n (per variant) whose power reaches ``POWER`` (a bisection: power grows
    with n), or None beyond ``SEEDS_NEEDED_CAP``."""

    def enough(n: int) -> bool:
        power = _power(es, np.array([n]), alpha, paired=paired, alternative=alternative)[0]
        return bool(power >= POWER)

    lo, hi = 2, SEEDS_NEEDED_CAP
    if not enough(hi):
        return None
    if enough(lo):
        return lo
    while hi - lo > 1:  # enough(hi) and not enough(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def seeds_needed(
    diff: float, sd: float, margin: float, alpha: float, *, paired: bool
) -> int | None:
    """Seeds per variant that would decide the pair with 80% power at the observed spread.

    The smaller of: the seeds to detect ``|diff|`` (two-sided, level ``alpha``) and the seeds
    for the TOST to show ``|diff| < margin`` (each one-sided test at level ``alpha``; only
    when ``|diff| < margin``). Capped at ``SEEDS_NEEDED_CAP``; None without spread.
    """
    if not (sd > 0.0 and math.isfinite(sd) and math.isfinite(diff)):
        return None
    candidates: list[int] = []
    gap = abs(diff)
    if gap > 0.0:
        n = _first_n(gap / sd, alpha, paired=paired, alternative="two-sided")
        if n is not None:
            candidates.append(n)
    if gap < margin:
        n = _first_n((margin - gap) / sd, alpha, paired=paired, alternative="larger")
        if n is not None:
            candidates.append(n)
    return min(candidates) if candidates else SEEDS_NEEDED_CAP
