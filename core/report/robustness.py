"""Beyond one clean test set: corruption errors, mCE, and whether a ranking holds across datasets.

Corruption error (Hendrycks and Dietterich, ICLR 2019): a model f's error summed over the
severities of corruption c, relative to a baseline model's on the same corrupted examples,

    CE_c(f) = sum_s E_{s,c}(f) / sum_s E_{s,c}(baseline),      mCE(f) = mean_c CE_c(f),

and the relative version, which measures how much of the error is the corruption's own (what a
model loses beyond its clean error),

    rCE_c(f) = sum_s (E_{s,c}(f) - E_clean(f)) / sum_s (E_{s,c}(base) - E_clean(base)).

Errors here are one minus accuracy, averaged over the seeds first (the paired design scores
every variant of a seed on identical corrupted examples). A baseline whose corruption adds no
error leaves rCE undefined for that corruption (None).

Across datasets, "does the ranking hold" is a test of the variant-by-dataset interaction on the
paired per-seed differences: Welch's one-way ANOVA of each dataset's differences (statsmodels'
``anova_oneway`` with unequal variances), which asks whether the mean difference is the same on
every dataset. Its p-values are Holm-adjusted across the tested pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.report.stats import holm

__all__ = ["Interaction", "corruption_errors", "interaction_tests", "mce"]

Errors = Mapping[tuple[str, int], float]
"""Error (1 - accuracy) by (corruption, severity), averaged over seeds."""


def corruption_errors(
    model: Errors, baseline: Errors, *, clean: tuple[float, float] | None = None
) -> dict[str, float | None]:
    """CE per corruption of ``model`` against ``baseline`` over the severities both have; with
    ``clean`` = (model's clean error, baseline's clean error) the relative CE instead."""
    out: dict[str, float | None] = {}
    for corruption in sorted({c for c, _ in model}):
        keys = [k for k in model if k[0] == corruption and k in baseline]
        if clean is None:
            num = sum(model[k] for k in keys)
            den = sum(baseline[k] for k in keys)
        else:
            num = sum(model[k] - clean[0] for k in keys)
            den = sum(baseline[k] - clean[1] for k in keys)
        out[corruption] = num / den if keys and den > 0 else None
    return out


def mce(ce: Mapping[str, float | None]) -> float | None:
    """The mean of the defined corruption errors (None when none is)."""
    values = [v for v in ce.values() if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class Interaction:
    """Whether a pair's paired difference is the same on every dataset."""

    a: str
    b: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    datasets: tuple[str, ...]


def _welch_anova(groups: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    from statsmodels.stats.oneway import anova_oneway

    usable = [np.asarray(g, dtype=np.float64) for g in groups if len(g) >= 2]
    if len(usable) < 2 or len(usable) != len(groups):
        return None
    spread = [float(np.var(g, ddof=1)) for g in usable]
    if any(s == 0.0 for s in spread):  # constant differences: equal means or not, exactly
        means = {round(float(np.mean(g)), 12) for g in usable}
        return (0.0, 1.0) if len(means) == 1 else (math.inf, 0.0)
    result = anova_oneway(usable, use_var="unequal")
    return float(result.statistic), float(result.pvalue)


def interaction_tests(
    diffs: Mapping[tuple[str, str], Mapping[str, Sequence[float]]],
) -> list[Interaction]:
    """For each pair (a, b), the test that its per-seed paired differences (a - b) have the same
    mean on every dataset (``diffs[(a, b)][dataset]``), Holm-adjusted across the pairs tested.
    A pair with fewer than two datasets of at least two seeds each is not tested."""
    raw: list[tuple[tuple[str, str], tuple[str, ...], tuple[float, float] | None]] = []
    for pair, by_dataset in diffs.items():
        names = tuple(by_dataset)
        raw.append((pair, names, _welch_anova([by_dataset[d] for d in names])))
    tested = [r[2][1] for r in raw if r[2] is not None]
    adjusted = iter(holm(tested))
    out = []
    for (a, b), names, result in raw:
        if result is None:
            out.append(Interaction(a, b, None, None, None, names))
        else:
            out.append(Interaction(a, b, result[0], result[1], next(adjusted), names))
    return out
