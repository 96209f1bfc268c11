"""The control of "do they differ": what A and B's disagreement is compared with.

A trial's data seed fixes its split (per-seed design) and its data order (both designs) for
every variant (``core.seeding``), so A and B at seed s share both, and the cross pair (A at s
against B at s) differs in architecture only. Its control must differ in nothing else but
what the question is about:

- ``"replicates"`` (``analysis.replicates`` >= 1): a variant's trial at seed s against its
  replicate at seed s, the same data seed with another initialisation seed. The cross pair
  and the control share split and order; under the null (two names for one architecture)
  the two rates have one distribution, whatever the seeds' own effect on which examples are
  hard.
- ``"seeds"`` (no replicates; the comparisons stored before them): two seeds of one variant
  (every pair of its seeds), which share neither split nor order. Their disagreement carries
  the seeds' effect that the cross pair does not, so the control is too high: a real
  difference is harder to find, and "they agree more than one agrees with itself" can
  happen. The report says so beside the figures.

``beyond_control_p`` is the one test behind ``differs``: D = cross rate - control rate over
its standard error, one-sided, Student's t with k - 1 degrees of freedom for k seeds. The
variance is the larger of the test examples' (cluster-robust, examples as clusters, both
rates in one sum) and the seeds' (the leave-one-seed-out jackknife of D; a seed's luck moves
its cross and control rows together): each counts the per-row noise, so not their sum.

``seed_interval``: the disagreement's 95% interval over seeds, Student's t on the per-seed
rates (each seed a draw of split, order and initialisation), cut to [0, 1]; beside it the
report keeps the interval over test examples (``disagreement_ci95``), which does not see
the seeds' variation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Control",
    "Rows",
    "TrialPredictions",
    "aligned",
    "beyond_control_p",
    "control_of",
    "jackknife_mean",
    "joined",
    "rate",
    "rows",
    "seed_interval",
]


@dataclass(frozen=True, eq=False)
class TrialPredictions:
    """One trial's test-set predictions; rows line up by ``examples`` (dataset ids)."""

    trial_id: str
    variant: str
    seed: int
    examples: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    predicted: npt.NDArray[np.int64]
    p_true: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]  # the top class's probability
    replicate: int = 0  # k >= 1: the variant's k-th replicate at this data seed

    @property
    def correct(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.predicted == self.labels
        return out


Rows = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]
"""Rows of two trials on the test examples both share: each row's example id, and whether the
two predict different classes there."""

ControlKind = Literal["replicates", "seeds"]


def aligned(
    x: TrialPredictions, y: TrialPredictions
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row positions in ``x`` and ``y`` of the test examples both hold, in id order."""
    _, ix, iy = np.intersect1d(x.examples, y.examples, assume_unique=True, return_indices=True)
    return ix, iy


def rows(x: TrialPredictions, y: TrialPredictions) -> Rows:
    ix, iy = aligned(x, y)
    return x.examples[ix], x.predicted[ix] != y.predicted[iy]


def joined(parts: Sequence[Rows]) -> Rows:
    ids = [np.zeros(0, dtype=np.int64), *(p[0] for p in parts)]
    flags = [np.zeros(0, dtype=bool), *(p[1] for p in parts)]
    return np.concatenate(ids), np.concatenate(flags)


def rate(flags: npt.NDArray[np.bool_]) -> float | None:
    return float(flags.mean()) if len(flags) else None


Keyed = list[tuple[tuple[int, ...], Rows]]
"""Control rows, each with the seeds it involves (one seed for a replicate pair, two for a
pair of seeds): the jackknife leaves a seed out with every row that involves it."""


@dataclass(frozen=True)
class Control:
    """A pair's control: its kind, the seeds its test runs over, and each variant's rows."""

    kind: ControlKind
    seeds: list[int]
    rows_a: Keyed
    rows_b: Keyed

    @property
    def rows(self) -> Keyed:
        return [*self.rows_a, *self.rows_b]


def _replicate_rows(
    main: Mapping[int, TrialPredictions], replicates: Mapping[int, Sequence[TrialPredictions]]
) -> Keyed:
    return [((s,), rows(main[s], r)) for s in sorted(main) for r in replicates.get(s, ())]


def _seed_rows(main: Mapping[int, TrialPredictions]) -> Keyed:
    return [((s, u), rows(main[s], main[u])) for s, u in itertools.combinations(sorted(main), 2)]


def control_of(
    ta: Mapping[int, TrialPredictions],
    tb: Mapping[int, TrialPredictions],
    ra: Mapping[int, Sequence[TrialPredictions]],
    rb: Mapping[int, Sequence[TrialPredictions]],
) -> Control:
    """The control of the pair (A, B): ``ta``/``tb`` each variant's trial by seed, ``ra``/``rb``
    its replicates by seed. With a replicate of either variant at a paired seed, the
    replicates' control, tested over the paired seeds where both have one; else every pair of
    seeds of each variant, tested over the paired seeds. The rows are every such pair of the
    variant (its figure); the test keeps those within its seeds."""
    paired = sorted(set(ta) & set(tb))
    if any(ra.get(s) or rb.get(s) for s in paired):
        seeds = [s for s in paired if ra.get(s) and rb.get(s)]
        return Control("replicates", seeds, _replicate_rows(ta, ra), _replicate_rows(tb, rb))
    return Control("seeds", paired, _seed_rows(ta), _seed_rows(tb))


def _difference_and_variance(cross: Rows, within: Rows) -> tuple[float, float] | None:
    """(cross rate minus control rate, its variance over test examples)."""
    c_ids, c_flags = cross
    w_ids, w_flags = within
    n_c, n_w = len(c_flags), len(w_flags)
    if n_c == 0 or n_w == 0:
        return None
    fc, fw = c_flags.astype(np.float64), w_flags.astype(np.float64)
    rate_c, rate_w = float(fc.mean()), float(fw.mean())
    examples, cluster = np.unique(np.concatenate([c_ids, w_ids]), return_inverse=True)
    g = len(examples)
    u = np.bincount(cluster[:n_c], weights=(fc - rate_c) / n_c, minlength=g)
    u -= np.bincount(cluster[n_c:], weights=(fw - rate_w) / n_w, minlength=g)
    var = g / (g - 1) * float(np.sum(u**2)) if g > 1 else 0.0
    return rate_c - rate_w, var


def _difference(cross: Sequence[Rows], within: Sequence[Rows]) -> float | None:
    """Cross rate minus control rate, from counts alone (for the jackknife)."""
    n_c, n_w = sum(len(f) for _, f in cross), sum(len(f) for _, f in within)
    if n_c == 0 or n_w == 0:
        return None
    return sum(int(f.sum()) for _, f in cross) / n_c - sum(int(f.sum()) for _, f in within) / n_w


def beyond_control_p(cross: Mapping[int, Rows], control: Keyed) -> float | None:
    """One-sided p-value that A and B disagree more than the control's pairs do.

    ``cross``: the cross rows by seed (the seeds the test runs over); ``control``: the
    control's rows, each with the seeds it involves. None with fewer than three seeds (the
    jackknife cannot tell a difference from the luck of two runs) or no control rows."""
    seeds = sorted(cross)
    k = len(seeds)
    if k < 3:
        return None
    control = [(involved, r) for involved, r in control if set(involved) <= set(seeds)]
    whole = _difference_and_variance(joined(list(cross.values())), joined([r for _, r in control]))
    if whole is None:
        return None
    diff, var_examples = whole
    leave_out = [
        _difference(
            [r for x, r in cross.items() if x != s],
            [r for involved, r in control if s not in involved],
        )
        for s in seeds
    ]
    d = np.array([v for v in leave_out if v is not None])
    if len(d) != k:
        return None
    var_seeds = (k - 1) / k * float(np.sum((d - d.mean()) ** 2))
    var = max(var_examples, var_seeds)
    if var <= 0.0:
        return 0.0 if diff > 0.0 else 1.0
    from scipy.stats import t

    return float(t.sf(diff / math.sqrt(var), df=k - 1))


def seed_interval(per_seed: Sequence[float], alpha: float = 0.05) -> list[float] | None:
    """The 1 - alpha interval of a rate's mean over seeds: Student's t on the per-seed rates
    (``scipy.stats.t``), cut to [0, 1]; None with fewer than two seeds."""
    x = np.asarray(per_seed, dtype=np.float64)
    k = len(x)
    if k < 2:
        return None
    from scipy.stats import t

    half = float(t.ppf(1.0 - alpha / 2, k - 1)) * float(x.std(ddof=1)) / math.sqrt(k)
    mean = float(x.mean())
    return [max(0.0, mean - half), min(1.0, mean + half)]


def jackknife_mean(
    values: Sequence[tuple[tuple[int, ...], float]],
    *,
    bounds: tuple[float, float] = (-1.0, 1.0),
    alpha: float = 0.05,
) -> tuple[float | None, list[float] | None]:
    """The mean of figures read on seeds or pairs of seeds (each with the seeds it involves),
    and its 1 - alpha interval over seeds: the leave-one-seed-out jackknife's standard error,
    Student's t with k - 1 degrees of freedom for k seeds, cut to ``bounds``. For one figure
    per seed it is the t-interval of their mean; for every pair of k seeds (which share
    seeds, so the pairs are not independent) the jackknife counts each seed's weight. The
    interval is None with fewer than two seeds (three for pairs: a seed left out must leave
    a pair)."""
    if not values:
        return None, None
    mean = float(np.mean([v for _, v in values]))
    seeds = sorted({s for involved, _ in values for s in involved})
    k = len(seeds)
    leave_out = []
    for s in seeds:
        rest = [v for involved, v in values if s not in involved]
        if not rest:
            return mean, None
        leave_out.append(float(np.mean(rest)))
    if k < 2:
        return mean, None
    from scipy.stats import t

    d = np.array(leave_out)
    se = math.sqrt((k - 1) / k * float(np.sum((d - d.mean()) ** 2)))
    half = float(t.ppf(1.0 - alpha / 2, k - 1)) * se
    return mean, [max(bounds[0], mean - half), min(bounds[1], mean + half)]
