"""The comparison report: a pure function of the stored trial rows (and the spec), as JSON.

``build_report`` aggregates each variant's primary metric over its succeeded trials, tests
the *tested family* of pairs (``tested_pairs``: every variant against ``baseline``, or all
pairs), concludes each pair ``a_better``/``b_better``/``equivalent``/``inconclusive``/
``untested``, groups the variants in tiers and writes the verdict and notes. Only
``succeeded`` trials enter the statistics; a trial that ended with ``stop_reason ==
"diverged"`` has succeeded (it is scored as it ended) and is counted in ``n_diverged``.

Choices worth knowing (the statistics themselves are in ``core.stats``):

- ``std`` is the sample standard deviation (ddof=1); ``ci95`` is the t-interval
  ``mean ± t(0.975, n-1)·std/√n``. Both are ``None`` when ``n < 2``.
- A pair is tested only when both sides have ``n >= MIN_SEEDS`` (3); otherwise its
  conclusion is ``untested``. When both sides ran the same seeds the test is the paired t
  (``test: "paired_t"``) on the per-seed differences, whose correlation is reported;
  otherwise Welch's t (``"welch"``).
- Superiority p-values are Holm-adjusted over the whole planned family (an untestable pair
  counts as p = 1, so the family never shrinks while trials run); TOST equivalence p-values
  against ``equivalence_margin`` are Holm-adjusted the same way. A pair is ``a_better`` /
  ``b_better`` when its adjusted p is below the look's level, else ``equivalent`` when its
  adjusted TOST p is, else ``inconclusive``. With no spread at all (every per-seed difference
  the same, or both sides constant) no test is possible: the pair is ``equivalent`` when
  the exact difference is inside the margin and ``inconclusive`` otherwise.
- Sequential seeds (``seeds: {min, max, step}``): look k has ``min + (k-1)·step`` seeds per
  variant; look k is tested at its increment of the Lan-DeMets Pocock-type spending
  function ``alpha·ln(1 + (e-1)·t)``, ``t = n_k / n_max`` (a union bound over looks, so the
  family-wise error stays at most alpha under any stopping rule). The list form is one look
  at the full alpha. While trials of the current look are still queued or running, the
  conclusions are withheld (``inconclusive``, ``significant`` false): an interim report
  never claims a result at any level.
- ``ci95`` is the unadjusted 95% interval of ``mean(a) - mean(b)``; ``ci95_adjusted`` is the
  Bonferroni interval at level ``1 - level/m`` (m = family size, level = the look's level):
  when it excludes zero, the Holm test rejects too.
- ``effect_size`` is Hedges' g matching the test (``core.stats``), with ``effect_size_ci95``.
- ``mde``: the true difference detected with 80% power with the present seeds at the
  look's per-pair level ``level/m``; ``seeds_needed`` (inconclusive pairs only): seeds per
  variant that would decide the pair with 80% power at the observed spread, at the last
  look's per-pair level.
- ``rank`` is a competition rank (exact ties share one); variants with fewer than 3 seeds
  come after every tested variant whatever their mean. ``tier`` 1 is the best tested
  variant with every variant no tested pair shows worse than it; then the same over the
  rest. Untested variants have no tier.
- ``auc_val_accuracy`` is the normalised area under the validation-accuracy curve.
- ``seconds_per_epoch_*`` and ``inference_ms_per_sample_*`` are the mean, std and 95%
  interval over the variant's succeeded trials that timed them.
- The verdict and notes are written by ``core.report_render`` from this dict alone.
- Every float in the answer is finite or ``None``: JSON cannot carry NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from core import stats as st
from core.report_render import MIN_SEEDS, fairness_notes, verdict_sentence
from core.report_schema import PairDifference
from core.stats import look_levels, pocock_spending
from core.status import StopReason

__all__ = [
    "ALPHA",
    "PAIRWISE_ROW_COLUMNS",
    "PRIMARY_METRICS",
    "REPORT_ROW_COLUMNS",
    "EpochPoint",
    "TrialResult",
    "WelchResult",
    "build_report",
    "cohens_d",
    "holm_adjust",
    "needs_more_seeds",
    "pairwise_rows",
    "report_rows",
    "tested_pairs",
    "welch_test",
]

PRIMARY_METRICS: Mapping[str, bool] = {
    "test_accuracy": True,
    "test_loss": False,
    "best_val_accuracy": True,
}
"""Each primary metric the report accepts, mapped to whether higher is better."""

ALPHA = 0.05
"""Family-wise significance level, applied to Holm-adjusted p-values."""

DEFAULT_MARGIN = 0.01
"""``equivalence_margin`` when the spec has none: one point of accuracy."""

SEQUENTIAL_METHOD = "lan_demets_pocock"
"""``design.sequential`` of an adaptive design: Lan-DeMets spending, Pocock-type function."""

DIVERGED = StopReason.DIVERGED
STOPPED_EARLY = (StopReason.EARLY_STOPPING.value, StopReason.TIME_BUDGET.value)
_REL_TOL = 1e-12

REPORT_ROW_COLUMNS: tuple[str, ...] = (
    "name",
    "params",
    "flops",
    "n",
    "mean",
    "std",
    "ci95_lo",
    "ci95_hi",
    "test_loss_mean",
    "test_loss_std",
    "test_loss_ci95_lo",
    "test_loss_ci95_hi",
    "best_val_accuracy_mean",
    "final_val_accuracy_mean",
    "epochs_done_mean",
    "epochs_to_95pct_best",
    "auc_val_accuracy",
    "train_seconds_mean",
    "seconds_per_epoch_mean",
    "inference_ms_per_sample_mean",
    "rank",
    "tier",
    "n_diverged",
    "seconds_per_epoch_std",
    "inference_ms_per_sample_std",
)
"""The CSV columns of ``report_rows``, in order."""

PAIRWISE_ROW_COLUMNS: tuple[str, ...] = (
    "a",
    "b",
    "n_a",
    "n_b",
    "test",
    "correlation",
    "diff",
    "ci95_lo",
    "ci95_hi",
    "ci95_adjusted_lo",
    "ci95_adjusted_hi",
    "p_value",
    "p_adjusted",
    "effect_size",
    "effect_size_ci95_lo",
    "effect_size_ci95_hi",
    "equivalence_p",
    "equivalence_p_adjusted",
    "conclusion",
    "mde",
    "seeds_needed",
    "level",
)
"""The CSV columns of ``pairwise_rows`` (``?format=csv&table=pairwise``), in order."""


@dataclass(frozen=True, slots=True)
class EpochPoint:
    """One epoch of one trial, as the worker stored it (slots: a 1,000 x 200 report holds
    200,000 of them)."""

    epoch: int
    val_accuracy: float | None
    val_loss: float | None
    accuracy: float | None
    loss: float | None
    seconds: float | None


@dataclass(frozen=True)
class TrialResult:
    """One (variant, seed) trial with its final numbers and its learning curve."""

    variant: str
    seed: int
    status: str
    params: int | None
    flops: int | None
    test_accuracy: float | None
    test_loss: float | None
    best_val_accuracy: float | None
    train_seconds: float | None
    epochs_done: int
    epochs_planned: int
    stop_reason: str | None
    inference_ms_per_sample: float | None
    curve: tuple[EpochPoint, ...]


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of ``mean(a) - mean(b)``; fields are None when no test is possible."""

    diff: float
    ci95: tuple[float, float] | None
    p_value: float | None
    df: float | None


@dataclass(frozen=True)
class _Summary:
    n: int
    mean: float | None = None
    std: float | None = None
    ci95: tuple[float, float] | None = None
    lo: float | None = None
    hi: float | None = None


@dataclass
class _Group:
    name: str
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    succeeded: list[TrialResult] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    n_running: int = 0
    n_diverged: int = 0
    params: int | None = None
    flops: int | None = None


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _moments(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for one value or a constant sample)."""
    n = len(values)
    lo, hi = min(values), max(values)
    if hi - lo <= _REL_TOL * max(1.0, abs(lo), abs(hi)):
        return (lo if lo == hi else math.fsum(values) / n), 0.0
    # Divide by a power of two (exact) near the largest magnitude so squares cannot overflow.
    scale = math.ldexp(1.0, math.frexp(max(abs(lo), abs(hi)))[1] - 1)
    arr = np.asarray(values, dtype=float) / scale
    return scale * float(arr.mean()), scale * float(arr.std(ddof=1))


def _summarize(values: Sequence[float]) -> _Summary:
    n = len(values)
    if n == 0:
        return _Summary(0)
    mean, std = _moments(values)
    if n < 2:
        return _Summary(n, mean, None, None, values[0], values[0])
    half = float(special.stdtrit(n - 1, 0.975)) * std / math.sqrt(n)  # t.ppf, faster
    return _Summary(n, mean, std, (mean - half, mean + half), min(values), max(values))


def _mean(values: Iterable[float | None]) -> float | None:
    kept = _present(values)
    return math.fsum(kept) / len(kept) if kept else None


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in (_finite(x) for x in values) if v is not None]


def welch_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's t-test (scipy) and the Welch-Satterthwaite 95% interval of mean(a) - mean(b)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least two values on each side")
    (ma, sa), (mb, sb) = _moments(a), _moments(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    denom = va * va / (len(a) - 1) + vb * vb / (len(b) - 1)
    df = (va + vb) * (va + vb) / denom if denom > 0.0 else math.nan
    if not math.isfinite(df) or va + vb == 0.0:
        return WelchResult(ma - mb, None, None, None)
    half = float(stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
    # scipy's Welch test from the same moments, so p, CI and the constant-sample rule agree
    # (and scipy never warns about catastrophic cancellation on a near-constant sample).
    welch = stats.ttest_ind_from_stats(ma, sa, len(a), mb, sb, len(b), equal_var=False)
    p = _finite(welch.pvalue)
    return WelchResult(ma - mb, (ma - mb - half, ma - mb + half), p, df)


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Cohen's d of a over b with the pooled standard deviation; None when that is zero."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = _moments(a), _moments(b)
    pooled_var = ((len(a) - 1) * sa * sa + (len(b) - 1) * sb * sb) / (len(a) + len(b) - 2)
    return _finite((ma - mb) / math.sqrt(pooled_var)) if pooled_var > 0.0 else None


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (statsmodels), returned in the input order."""
    return st.holm(p_values)


# --- aggregation ------------------------------------------------------------------------


def _variant_names(variant_order: Sequence[str], trials: Sequence[TrialResult]) -> list[str]:
    names = list(dict.fromkeys(variant_order))
    seen = set(names)
    for t in trials:
        if t.variant not in seen:
            seen.add(t.variant)
            names.append(t.variant)
    return names


def _group(
    name: str, trials: Sequence[TrialResult], metric: str, info: Mapping[str, Any] | None
) -> _Group:
    g = _Group(name)
    for t in trials:
        if t.status == "succeeded":
            value = _finite(getattr(t, metric))
            if value is None:
                g.missing.append(t.seed)
            else:
                g.succeeded.append(t)
                g.values.append(value)
                g.seeds.append(t.seed)
        elif t.status == "failed":
            g.failed.append(t.seed)
        elif t.status == "cancelled":
            g.cancelled.append(t.seed)
        elif t.status in ("queued", "running"):
            g.n_running += 1
        if t.stop_reason == DIVERGED:
            g.n_diverged += 1
    with_counts = [t for t in g.succeeded if t.params is not None] or list(trials)
    g.params = next((t.params for t in with_counts if t.params is not None), None)
    g.flops = next((t.flops for t in with_counts if t.flops is not None), None)
    if info is not None:
        g.params = g.params if g.params is not None else info.get("params")
        g.flops = g.flops if g.flops is not None else info.get("flops")
    return g


def _val_accuracies(t: TrialResult) -> list[tuple[int, float]]:
    return [(p.epoch, v) for p in t.curve if (v := _finite(p.val_accuracy)) is not None]


def _epochs_to_95pct(t: TrialResult) -> float | None:
    points = _val_accuracies(t)
    if not points:
        return None
    threshold = 0.95 * max(v for _, v in points)
    first = next((e for e, v in points if v >= threshold), None)
    return None if first is None else float(first)


def _auc(t: TrialResult) -> float | None:
    return _mean(v for _, v in _val_accuracies(t))


def _best_val(t: TrialResult) -> float | None:
    best = _finite(t.best_val_accuracy)
    points = _val_accuracies(t)
    return best if best is not None else (max(v for _, v in points) if points else None)


def _final_val(t: TrialResult) -> float | None:
    points = _val_accuracies(t)
    return points[-1][1] if points else None


def _seconds_per_epoch(t: TrialResult) -> float | None:
    per_epoch = _mean(p.seconds for p in t.curve)
    if per_epoch is not None:
        return per_epoch
    seconds = _finite(t.train_seconds)
    return seconds / t.epochs_done if seconds is not None and t.epochs_done > 0 else None


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    """The interval as a JSON list, or None when it is missing or not finite."""
    return list(ci) if ci is not None and all(map(math.isfinite, ci)) else None


def _ci(s: _Summary) -> list[float] | None:
    return _interval(s.ci95)


def _variant_block(g: _Group, info: Mapping[str, Any] | None) -> dict[str, Any]:
    ok = g.succeeded
    main = _summarize(g.values)
    loss = _summarize(_present(t.test_loss for t in ok))
    best = _summarize(_present(_best_val(t) for t in ok))
    final = _summarize(_present(_final_val(t) for t in ok))
    per_seed = sorted(zip(g.seeds, g.values, strict=True))
    epoch_time = _summarize(_present(_seconds_per_epoch(t) for t in ok))
    inference = _summarize(_present(t.inference_ms_per_sample for t in ok))
    return {
        "name": g.name,
        "params": g.params,
        "flops": g.flops,
        "analysis": dict(info) if info is not None else None,
        "n": main.n,
        "n_failed": len(g.failed),
        "n_cancelled": len(g.cancelled),
        "n_running": g.n_running,
        "failed_seeds": sorted(g.failed),
        "cancelled_seeds": sorted(g.cancelled),
        "seeds_without_metric": sorted(g.missing),
        "stopped_early": {r: sum(t.stop_reason == r for t in ok) for r in STOPPED_EARLY},
        "n_diverged": g.n_diverged,
        "rank": None,
        "tier": None,
        "mean": main.mean,
        "std": main.std,
        "ci95": _ci(main),
        "min": main.lo,
        "max": main.hi,
        "test_loss": {"mean": loss.mean, "std": loss.std, "ci95": _ci(loss)},
        "best_val_accuracy": {"mean": best.mean, "std": best.std},
        "final_val_accuracy": {"mean": final.mean, "std": final.std},
        "epochs_done_mean": _mean(float(t.epochs_done) for t in ok),
        "epochs_to_95pct_best": _mean(_epochs_to_95pct(t) for t in ok),
        "auc_val_accuracy": _mean(_auc(t) for t in ok),
        "train_seconds_mean": _mean(t.train_seconds for t in ok),
        "seconds_per_epoch_mean": _mean(_seconds_per_epoch(t) for t in ok),
        "seconds_per_epoch_std": epoch_time.std,
        "seconds_per_epoch_ci95": _ci(epoch_time),
        "inference_ms_per_sample_mean": _mean(t.inference_ms_per_sample for t in ok),
        "inference_ms_per_sample_std": inference.std,
        "inference_ms_per_sample_ci95": _ci(inference),
        "per_seed": [{"seed": s, "value": v} for s, v in per_seed],
    }


# --- the tested family, the design and its looks ------------------------------------------


def tested_pairs(names: Sequence[str], baseline: str | None) -> list[tuple[str, str]]:
    """The tested family: every other variant against ``baseline`` (baseline first in each
    pair), or every pair in submission order when there is no baseline (or it is unknown)."""
    names = list(dict.fromkeys(names))
    if baseline is not None and baseline in names:
        return [(baseline, n) for n in names if n != baseline]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


@dataclass(frozen=True)
class _Plan:
    """What the spec says about the design, with the defaults of API.md 1.1."""

    split: str
    baseline: str | None
    margin: float
    schedule: list[int] | None  # seeds per variant at each look (adaptive), or None (a list)
    n_seeds: int | None  # the list form's length


def _plan(spec: Mapping[str, Any] | None, names: Sequence[str]) -> _Plan:
    spec = spec or {}
    dataset = spec.get("dataset") or {}
    # A stored spec without ``split`` predates per-seed splits: it ran on one fixed split.
    split = str(dataset.get("split", "fixed")) if isinstance(dataset, Mapping) else "fixed"
    baseline = spec.get("baseline")
    baseline = baseline if isinstance(baseline, str) and baseline in names else None
    margin = _finite(spec.get("equivalence_margin")) or DEFAULT_MARGIN
    margin = margin if margin > 0 else DEFAULT_MARGIN
    seeds = spec.get("seeds")
    schedule: list[int] | None = None
    n_seeds: int | None = None
    if isinstance(seeds, Mapping):
        lo, hi = int(seeds.get("min", 3)), int(seeds.get("max", 20))
        step = max(1, int(seeds.get("step", 1)))
        hi = max(lo, hi)
        schedule = [lo + k * step for k in range(math.ceil((hi - lo) / step))] + [hi]
    elif isinstance(seeds, Sequence) and not isinstance(seeds, str):
        n_seeds = len(seeds)
    return _Plan(split, baseline, margin, schedule, n_seeds)


def _looks(plan: _Plan, planned: int, complete: bool) -> dict[str, Any]:
    """The current look: its number, the looks planned, and its own testing level."""
    if plan.schedule is None:
        return {
            "current": 1,
            "planned": 1,
            "complete": complete,
            "seeds_per_variant": [plan.n_seeds if plan.n_seeds is not None else planned],
            "level": ALPHA,
            "alpha_spent": ALPHA,
        }
    ns = plan.schedule
    k = next((i for i, n in enumerate(ns) if n >= planned), len(ns) - 1)
    levels = look_levels(ns, ALPHA)
    return {
        "current": k + 1,
        "planned": len(ns),
        "complete": complete,
        "seeds_per_variant": ns,
        "level": levels[k],
        "alpha_spent": pocock_spending(ns[k] / ns[-1], ALPHA),
        "final_level": levels[-1],
    }


# --- pairs --------------------------------------------------------------------------------


def _by_seed(g: _Group) -> dict[int, float]:
    return dict(zip(g.seeds, g.values, strict=True))


def _correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 3 or st.constant(a) or st.constant(b):
        return None
    return _finite(float(np.corrcoef(a, b)[0, 1]))


def _pair_row(
    ga: _Group, gb: _Group, *, family: int, level: float, final_level: float, margin: float
) -> dict[str, Any]:
    na, nb = len(ga.values), len(gb.values)
    row: dict[str, Any] = {
        "a": ga.name,
        "b": gb.name,
        "n_a": na,
        "n_b": nb,
        "test": None,
        "paired": False,
        "correlation": None,
        "diff": None,
        "ci95": None,
        "ci95_adjusted": None,
        "df": None,
        "p_value": None,
        "p_adjusted": None,
        "significant": False,
        "effect_size": None,
        "effect_size_ci95": None,
        "equivalence_p": None,
        "equivalence_p_adjusted": None,
        "conclusion": "untested",
        "mde": None,
        "seeds_needed": None,
        "level": None,
    }
    if na and nb:
        row["diff"] = _finite(_moments(ga.values)[0] - _moments(gb.values)[0])
    if min(na, nb) < MIN_SEEDS or row["diff"] is None:
        return row
    try:
        with np.errstate(all="ignore"):
            return _tested_row(row, ga, gb, family, level, final_level, margin)
    except (ArithmeticError, ValueError):
        # Values beyond float range (never accuracies or losses): no test, stays untested.
        return row


def _tested_row(
    row: dict[str, Any],
    ga: _Group,
    gb: _Group,
    family: int,
    level: float,
    final_level: float,
    margin: float,
) -> dict[str, Any]:
    na, nb = len(ga.values), len(gb.values)
    sa, sb = _by_seed(ga), _by_seed(gb)
    paired = sorted(sa) == sorted(sb)
    adjusted_level = 1.0 - level / family
    if paired:
        seeds = sorted(sa)
        a, b = [sa[s] for s in seeds], [sb[s] for s in seeds]
        t = st.paired_t(a, b, adjusted_level)
        g = st.hedges_g_paired(a, b)
        d = np.asarray(a) - np.asarray(b)
        sd = 0.0 if st.constant(list(d)) else float(d.std(ddof=1))
        row["correlation"] = _correlation(a, b)
    else:
        a, b = ga.values, gb.values
        t = st.welch_t(a, b, adjusted_level)
        g = st.hedges_g_welch(a, b)
        va = 0.0 if st.constant(a) else float(np.var(a, ddof=1))
        vb = 0.0 if st.constant(b) else float(np.var(b, ddof=1))
        sd = math.sqrt((va + vb) / 2.0)
    row = dict(row)
    row.update(
        test="paired_t" if paired else "welch",
        paired=paired,
        diff=_finite(t.diff),
        ci95=_interval(t.ci95),
        ci95_adjusted=_interval(t.ci_adjusted),
        df=_finite(t.df),
        p_value=_finite(t.p),
        effect_size=None if g is None else _finite(g[0]),
        effect_size_ci95=None if g is None else _interval(g[1]),
        equivalence_p=st.tost(a, b, margin, paired=paired),
        mde=st.mde(sd, na, nb, level / family, paired=paired),
        level=level,
        _sd=sd,
        _final_level=final_level / family,
    )
    return row


def _conclude(
    rows: list[dict[str, Any]], *, higher: bool, level: float, margin: float, complete: bool
) -> None:
    """Holm over the whole planned family (an untestable pair counts as p = 1), then each
    pair's conclusion at the look's level."""
    sup = st.holm([1.0 if r["p_value"] is None else r["p_value"] for r in rows])
    eq = st.holm([1.0 if r["equivalence_p"] is None else r["equivalence_p"] for r in rows])
    for r, p_sup, p_eq in zip(rows, sup, eq, strict=True):
        sd = r.pop("_sd", None)
        final_level = r.pop("_final_level", None)
        if r["test"] is None:
            continue
        r["p_adjusted"] = None if r["p_value"] is None else p_sup
        r["equivalence_p_adjusted"] = None if r["equivalence_p"] is None else p_eq
        diff = r["diff"]
        if not complete:
            r["conclusion"] = "inconclusive"  # withheld until every trial of the look ends
        elif r["p_value"] is not None and p_sup < level:
            r["conclusion"] = "a_better" if (diff > 0) == higher else "b_better"
        elif r["equivalence_p"] is not None and p_eq < level:
            r["conclusion"] = "equivalent"
        elif r["p_value"] is None and abs(diff) < margin:
            # No spread at all and the exact difference is inside the margin.
            r["conclusion"] = "equivalent"
        else:
            r["conclusion"] = "inconclusive"
        r["significant"] = r["conclusion"] in ("a_better", "b_better")
        if r["conclusion"] == "inconclusive" and complete and sd and final_level:
            r["seeds_needed"] = st.seeds_needed(diff, sd, margin, final_level, paired=r["paired"])


def _ordered(variants: Sequence[dict[str, Any]], higher: bool) -> list[dict[str, Any]]:
    """Variants with enough seeds for a test first, then the rest with data, then none;
    best mean first within each; exact ties keep submission order."""
    key = {v["name"]: i for i, v in enumerate(variants)}

    def sort_key(v: dict[str, Any]) -> tuple[int, float, int]:
        if v["mean"] is None:
            return (2, 0.0, key[v["name"]])
        group = 0 if v["n"] >= MIN_SEEDS else 1
        return (group, -v["mean"] if higher else v["mean"], key[v["name"]])

    return sorted(variants, key=sort_key)


def _rank_and_tier(
    variants: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]], higher: bool
) -> list[str]:
    """Fill ``rank`` (competition ranking: exact ties share one) and ``tier``; the ranking."""
    ordered = _ordered(variants, higher)
    with_data = [v for v in ordered if v["mean"] is not None]
    for i, v in enumerate(with_data):
        prev = with_data[i - 1] if i else None
        same = (
            prev is not None
            and prev["mean"] == v["mean"]
            and ((prev["n"] >= MIN_SEEDS) == (v["n"] >= MIN_SEEDS))
        )
        v["rank"] = prev["rank"] if same and prev is not None else i + 1
    beaten: set[tuple[str, str]] = set()  # (winner, loser) by a tested pair's conclusion
    for p in pairs:
        if p["conclusion"] == "a_better":
            beaten.add((p["a"], p["b"]))
        elif p["conclusion"] == "b_better":
            beaten.add((p["b"], p["a"]))
    remaining = [v for v in with_data if v["n"] >= MIN_SEEDS]
    tier = 1
    while remaining:
        leader = remaining[0]
        group = [leader] + [v for v in remaining[1:] if (leader["name"], v["name"]) not in beaten]
        for v in group:
            v["tier"] = tier
        remaining = [v for v in remaining if v not in group]
        tier += 1
    return [v["name"] for v in ordered]


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float | np.floating):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def build_report(
    *,
    comparison_id: str,
    primary_metric: str,
    variant_order: Sequence[str],
    trials: Sequence[TrialResult],
    final: bool,
    variant_info: Mapping[str, Mapping[str, Any]] | None = None,
    spec: Mapping[str, Any] | None = None,
    differences: Sequence[PairDifference] = (),
) -> dict[str, Any]:
    """Aggregate trials into the report JSON: design, variants, pairwise conclusions, tiers,
    verdict and notes. ``spec`` is the comparison's normalised spec (seeds, baseline,
    equivalence_margin, dataset.split; defaults when absent); ``differences`` are
    ``core.report_schema.PairDifference`` models (or dicts) stored as they are."""
    if primary_metric not in PRIMARY_METRICS:
        raise ValueError(f"unknown primary metric {primary_metric!r}")
    higher = PRIMARY_METRICS[primary_metric]
    info = variant_info or {}
    names = _variant_names(variant_order, trials)
    by_name: dict[str, list[TrialResult]] = {n: [] for n in names}
    for t in trials:
        by_name[t.variant].append(t)
    groups = [_group(n, by_name[n], primary_metric, info.get(n)) for n in names]
    variants = [_variant_block(g, info.get(g.name)) for g in groups]
    plan = _plan(spec, names)
    complete = not any(g.n_running for g in groups)
    looks = _looks(plan, max((len(by_name[n]) for n in names), default=0), complete)
    family = tested_pairs(names, plan.baseline)
    group_of = {g.name: g for g in groups}
    level = float(looks["level"])
    final_level = float(looks.get("final_level", level))
    pairs = [
        _pair_row(
            group_of[a],
            group_of[b],
            family=max(1, len(family)),
            level=level,
            final_level=final_level,
            margin=plan.margin,
        )
        for a, b in family
    ]
    _conclude(pairs, higher=higher, level=level, margin=plan.margin, complete=complete)
    for v in variants:
        v["rank"] = None
        v["tier"] = None
    ranking = _rank_and_tier(variants, pairs, higher)
    tests = {p["test"] for p in pairs if p["test"] is not None}
    design = {
        "split": plan.split,
        "paired": bool(tests) and tests == {"paired_t"},
        "test": tests.pop() if len(tests) == 1 else ("mixed" if tests else None),
        "alpha": ALPHA,
        "equivalence_margin": plan.margin,
        "baseline": plan.baseline,
        "sequential": SEQUENTIAL_METHOD if plan.schedule is not None else None,
        "looks": looks,
        "family_size": len(family),
        "multiplicity": "holm",
        "interval_adjustment": "bonferroni",
    }
    report: dict[str, Any] = _json_safe(
        {
            "comparison_id": comparison_id,
            "final": final,
            "interim": not final,
            "primary_metric": primary_metric,
            "higher_is_better": higher,
            "design": design,
            "variants": variants,
            "pairwise": pairs,
            "ranking": ranking,
            "differences": [_dump(d) for d in differences],
        }
    )
    report["verdict"] = verdict_sentence(report)
    report["notes"] = fairness_notes(report)
    return report


def _dump(d: PairDifference | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(d, PairDifference):
        return d.model_dump(mode="json")
    return PairDifference.model_validate(d).model_dump(mode="json")


def needs_more_seeds(report: Any) -> bool:
    """True when the design is adaptive, the last look is not reached, the current look's
    trials have all ended, and some tested pair is ``inconclusive``."""
    if not isinstance(report, Mapping):
        report = report.model_dump(mode="json")
    design = report.get("design") or {}
    looks = design.get("looks") or {}
    if design.get("sequential") is None or not looks.get("complete", False):
        return False
    if int(looks.get("current", 1)) >= int(looks.get("planned", 1)):
        return False
    return any(p.get("conclusion") == "inconclusive" for p in report.get("pairwise", ()))


def report_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per variant for CSV, with the columns of ``REPORT_ROW_COLUMNS``."""
    rows: list[dict[str, Any]] = []
    for v in report["variants"]:
        ci = v.get("ci95") or [None, None]
        loss = v.get("test_loss") or {}
        loss_ci = loss.get("ci95") or [None, None]
        rows.append(
            {
                "name": v["name"],
                "params": v.get("params"),
                "flops": v.get("flops"),
                "n": v.get("n"),
                "mean": v.get("mean"),
                "std": v.get("std"),
                "ci95_lo": ci[0],
                "ci95_hi": ci[1],
                "test_loss_mean": loss.get("mean"),
                "test_loss_std": loss.get("std"),
                "test_loss_ci95_lo": loss_ci[0],
                "test_loss_ci95_hi": loss_ci[1],
                "best_val_accuracy_mean": (v.get("best_val_accuracy") or {}).get("mean"),
                "final_val_accuracy_mean": (v.get("final_val_accuracy") or {}).get("mean"),
                "epochs_done_mean": v.get("epochs_done_mean"),
                "epochs_to_95pct_best": v.get("epochs_to_95pct_best"),
                "auc_val_accuracy": v.get("auc_val_accuracy"),
                "train_seconds_mean": v.get("train_seconds_mean"),
                "seconds_per_epoch_mean": v.get("seconds_per_epoch_mean"),
                "inference_ms_per_sample_mean": v.get("inference_ms_per_sample_mean"),
                "rank": v.get("rank"),
                "tier": v.get("tier"),
                "n_diverged": v.get("n_diverged"),
                "seconds_per_epoch_std": v.get("seconds_per_epoch_std"),
                "inference_ms_per_sample_std": v.get("inference_ms_per_sample_std"),
            }
        )
    return rows


def pairwise_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per tested pair for CSV, with the columns of ``PAIRWISE_ROW_COLUMNS``."""
    rows: list[dict[str, Any]] = []
    for p in report["pairwise"]:
        row = {k: p.get(k) for k in PAIRWISE_ROW_COLUMNS}
        for key in ("ci95", "ci95_adjusted", "effect_size_ci95"):
            lo, hi = p.get(key) or (None, None)
            row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi
        rows.append(row)
    return rows
