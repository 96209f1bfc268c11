"""Group-sequential boundaries from the joint distribution of the look statistics.

An adaptive design (``seeds: {min, max, step}``) looks at the data after each round: look k
has ``n_k`` seeds per variant, its information fraction is ``t_k = n_k / n_K``. Under the
null the standardised statistics ``Z_1, ..., Z_K`` of the looks are jointly normal with
``corr(Z_j, Z_k) = sqrt(t_j / t_k)`` (j <= k): the partial sums ``S_k = Z_k sqrt(t_k)`` have
independent normal increments of variance ``t_k - t_{k-1}``. A boundary ``c_k`` is the
critical value of ``|Z_k|``; the design's type I error is the probability that some
``|Z_k| >= c_k``, which ``crossing_probability`` integrates exactly (the recursive numerical
integration of Armitage, McPherson and Rowe, 1969, as Jennison and Turnbull, 2000, ch. 19,
describe it, with Simpson's rule on a grid finer than the narrowest increment).

Two boundary shapes (Jennison and Turnbull, ch. 2):

- ``pocock``: one constant ``c`` at every look (stops early most easily);
- ``obrien_fleming``: ``c / sqrt(t_k)`` (very strict at the first looks, close to the fixed
  design's critical value at the last, so it keeps almost all of the fixed design's power).

``c`` is solved so that the crossing probability is exactly ``alpha`` (two-sided). Each
look's boundary becomes a *nominal level* ``2 (1 - Φ(c_k))`` for the look's t-test
p-value (the significance-level approach of Jennison and Turnbull, §3.8). With the few
seeds of an early look (2 degrees of freedom at 3 seeds) the t statistics of the looks are
less correlated than the normal ones, and those levels alone let the error reach 6% over
18 looks; ``t_levels`` therefore scales the levels, keeping their shape, so that the
paired t-test's own look statistics cross with probability ``alpha``: the scale is the
``alpha`` quantile of ``min_k p_k / level_k`` over 200,000 simulated null paths (a fixed
random seed, so the levels are the same on every call). The same levels give the repeated
confidence intervals
(Jennison and Turnbull, ch. 9): the interval at level ``1 - level_k`` at look k covers the
true difference at every look simultaneously with probability ``1 - alpha``, so it stays
valid whatever the stopping rule.

Several pairs are tested by Holm's procedure in its group-sequential form (Maurer and
Bretz, 2013): at each look an undecided pair is rejected when its p-value is below the
boundary of a design at level ``alpha / (pairs still undecided)``; a rejected pair stays
rejected and its alpha goes to the others.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

__all__ = [
    "BOUNDARIES",
    "boundary_levels",
    "crossing_probability",
    "holm_sequential",
    "t_levels",
    "z_bounds",
]

BOUNDARIES = ("pocock", "obrien_fleming")
"""The boundary shapes an adaptive design may name (``seeds.boundary``)."""

_MAX_GRID = 401  # grid points per look: bounds the cost of a design with very many looks


def _grid(half_width: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Points on ``[-half_width, half_width]`` and their composite Simpson weights."""
    intervals = max(2, 2 * math.ceil(half_width / h))
    intervals = min(intervals, _MAX_GRID - 1)
    x = np.linspace(-half_width, half_width, intervals + 1)
    step = x[1] - x[0]
    w = np.ones(intervals + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * step / 3.0


def crossing_probability(bounds: Sequence[float], fractions: Sequence[float]) -> float:
    """P(|Z_k| >= bounds[k] for some k) under the null, for information ``fractions``."""
    t = np.asarray(fractions, dtype=float)
    c = np.asarray(bounds, dtype=float)
    sd = np.sqrt(np.diff(np.concatenate(([0.0], t))))
    b = c * np.sqrt(t)  # the bounds on S_k
    h = float(sd.min()) / 8.0
    total = float(special.erfc(c[0] / math.sqrt(2.0)))  # 2 (1 - Φ(c_1))
    x, w = _grid(b[0], h)
    f = np.exp(-0.5 * (x / sd[0]) ** 2) / (sd[0] * math.sqrt(2.0 * math.pi))
    for k in range(1, len(t)):
        mass = w * f
        total += float(
            np.sum(mass * (special.ndtr((-b[k] - x) / sd[k]) + special.ndtr((x - b[k]) / sd[k])))
        )
        if k < len(t) - 1:
            y, wy = _grid(b[k], h)
            z = (y[:, None] - x[None, :]) / sd[k]
            f = (np.exp(-0.5 * z * z) / (sd[k] * math.sqrt(2.0 * math.pi))) @ mass
            x, w = y, wy
    return total


def _shape(fractions: Sequence[float], kind: str) -> list[float]:
    if kind == "pocock":
        return [1.0] * len(fractions)
    if kind == "obrien_fleming":
        return [1.0 / math.sqrt(t) for t in fractions]
    raise ValueError(f"unknown boundary {kind!r}")


@functools.lru_cache(maxsize=1024)
def z_bounds(fractions: tuple[float, ...], alpha: float, kind: str) -> tuple[float, ...]:
    """The critical values of ``|Z_k|`` whose crossing probability is ``alpha``."""
    shape = _shape(fractions, kind)
    if len(fractions) == 1:
        return (float(special.ndtri(1.0 - alpha / 2.0)),)

    def excess(c: float) -> float:
        return crossing_probability([c * x for x in shape], fractions) - alpha

    fixed = float(special.ndtri(1.0 - alpha / 2.0))
    hi = float(special.ndtri(1.0 - alpha / (2.0 * len(fractions))))  # Bonferroni: too strict
    lo = fixed / max(shape)
    c = float(optimize.brentq(excess, lo, hi * max(shape) + 1.0, xtol=1e-10))
    return tuple(c * x for x in shape)


@functools.lru_cache(maxsize=1024)
def boundary_levels(fractions: tuple[float, ...], alpha: float, kind: str) -> tuple[float, ...]:
    """Each look's nominal two-sided level ``2 (1 - Φ(c_k))``; they spend ``alpha`` in all."""
    return tuple(float(special.erfc(c / math.sqrt(2.0))) for c in z_bounds(fractions, alpha, kind))


_PATHS = 200_000
_CELLS = 4_000_000  # paths x looks held at once: fewer paths for a design with many looks
_MIN_DF = 2  # a look with fewer than 3 seeds is never tested (MIN_SEEDS)


@functools.lru_cache(maxsize=64)
def _null_t(schedule: tuple[int, ...]) -> np.ndarray:
    """|t| of the one-sample t-test at each look, on simulated null paths (a fixed seed)."""
    paths = max(20_000, min(_PATHS, _CELLS // len(schedule)))
    n = np.asarray(schedule, dtype=float)
    idx = np.asarray(schedule) - 1
    x = np.random.default_rng(20261207).standard_normal((paths, schedule[-1]))
    s1, s2 = np.cumsum(x, 1)[:, idx], np.cumsum(x * x, 1)[:, idx]
    with np.errstate(all="ignore"):
        mean = s1 / n
        t = np.abs(mean / np.sqrt((s2 - n * mean * mean) / (n - 1) / n))
    return np.where(n - 1 >= _MIN_DF, np.nan_to_num(t), 0.0)


@functools.lru_cache(maxsize=1024)
def t_levels(schedule: tuple[int, ...], alpha: float, kind: str) -> tuple[float, ...]:
    """Each look's nominal level for the t-test p-value at ``schedule[k]`` seeds: the normal
    boundary's levels, scaled so that the paired t-test's looks spend exactly ``alpha``."""
    if len(schedule) == 1:
        return (alpha,)
    fractions = tuple(n / schedule[-1] for n in schedule)
    base = np.asarray(boundary_levels(fractions, alpha, kind))
    t = _null_t(schedule)
    df = np.maximum(np.asarray(schedule, dtype=float) - 1.0, 1.0)

    def error(log_scale: float) -> float:
        crit = special.stdtrit(df, 1.0 - np.minimum(1.0, base * math.exp(log_scale)) / 2.0)
        return float((t > crit).any(axis=1).mean()) - alpha

    lo, hi = -3.0, 3.0  # the scale lies far inside e^-3 to e^3
    for _ in range(30):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if error(mid) <= 0.0 else (lo, mid)
    return tuple(float(x) for x in base * math.exp(lo))


def holm_sequential(
    p_by_look: Sequence[Sequence[float | None]],
    schedule: tuple[int, ...],
    alpha: float,
    kind: str,
) -> list[tuple[int, float] | None]:
    """Holm's procedure over looks: for each pair, the look (0-based) at which it is
    rejected and the level its p-value was below, or None. ``p_by_look[j][i]`` is pair i's
    p-value at look j (None: no test).

    At each look, an undecided pair is rejected when its p-value is below that look's
    boundary level for ``alpha / u`` (u = pairs still undecided, untestable pairs included,
    so the family never shrinks while trials run); rejections free alpha for the others at
    the same look, and a rejected pair stays rejected."""
    m = len(p_by_look[0]) if p_by_look else 0
    decided: list[tuple[int, float] | None] = [None] * m
    for j, ps in enumerate(p_by_look):
        while True:
            left = [i for i in range(m) if decided[i] is None]
            if not left:
                break
            level = t_levels(schedule, alpha / len(left), kind)[j]
            hits = [i for i in left if (p := ps[i]) is not None and p < level]
            if not hits:
                break
            for i in hits:
                decided[i] = (j, level)
    return decided
