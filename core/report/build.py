"""The comparison report: a pure function of the stored trial rows (and the spec), as JSON.

``build_report`` aggregates each variant's primary metric over its succeeded trials, tests
the *tested family* of pairs (``tested_pairs``: the named ``pairs``, every variant against
``baseline``, or all pairs), concludes each pair ``a_better``/``b_better``/``equivalent``/
``inconclusive``/``untested``, groups the variants in tiers and writes the verdict and notes. Only
``succeeded`` trials enter the statistics; a trial that ended with ``stop_reason ==
"diverged"`` has succeeded (it is scored as it ended, or at the comparison's worst value
when its metric is not finite) and is counted in ``n_diverged``.

Choices worth knowing (the statistics are in ``core.report.stats``, the family, looks, conclusions
and tiers in ``core.report.pairs``):

- ``std`` is the sample standard deviation (ddof=1); ``ci95`` is the t-interval
  ``mean ± t(0.975, n-1)·std/√n`` intersected with the metric's range (``VARIANT_INTERVALS``).
  Both are ``None`` when ``n < 2``.
- A pair is tested only when both sides have ``n >= MIN_SEEDS`` (3); otherwise its
  conclusion is ``untested``. When the two sides share at least ``MIN_SEEDS`` seeds the
  test is the paired t (``test: "paired_t"``) on the per-seed differences over the shared
  seeds only (a seed one side lacks is left out; ``n_paired`` counts them), whose
  correlation is reported; otherwise Welch's t (``"welch"``) over all of each side.
- The tested family is the spec's named ``pairs`` when given, else every variant against
  ``baseline``, else all pairs. Superiority p-values are judged by Holm over the whole
  planned family (an untestable pair counts as p = 1, so the family never shrinks while
  trials run); TOST equivalence p-values against ``equivalence_margin`` are Holm-adjusted
  the same way. A pair is ``a_better`` / ``b_better`` when Holm rejects it, else
  ``equivalent`` when its adjusted TOST p is below the level, else ``inconclusive``. With
  no spread at all (every per-seed difference the same, or both sides constant) the t-test
  is undefined and an exact test takes its place (``exact_test``: sign or Mann-Whitney),
  for the difference and the equivalence alike. ``practical`` reads a better pair's
  interval against the margin.
- Sequential seeds (``seeds: {min, max, step, boundary}``): look k has
  ``min + (k-1)·step`` seeds per variant and is tested against group-sequential boundaries
  (``core.report.sequential``; Holm per look, ``core.report.looks``), replayed look by look
  so that a pair decided at a look stays decided (``decided_at_look``, ``decision_p``). The
  list form is one look at the full alpha. While trials of the current look are still
  queued or running, the pairs that no earlier look decided read ``inconclusive``: an
  interim report never claims a result the completed looks do not support.
- ``ci95`` is the 95% interval of ``mean(a) - mean(b)``: a t-interval, or in an adaptive
  design the repeated confidence interval (``interval``); ``ci95_adjusted`` is the
  Bonferroni interval at ``1 - alpha/m`` (m = family size; adaptive: the look's level for
  alpha/m). ``equivalence_ci90`` is the 90% interval matching a 5% TOST.
- ``effect_size`` is Hedges' g matching the test (``core.report.stats``), with ``effect_size_ci95``.
- ``mde``: the true difference detected with 80% power with the present seeds at the
  look's per-pair level ``level/m``; ``seeds_needed`` (inconclusive pairs only): seeds per
  variant that would decide the pair with 80% power at the observed spread, at the last
  look's per-pair level.
- ``rank`` is a competition rank (exact ties share one); variants with fewer than 3 seeds
  come after every tested variant whatever their mean. ``tier`` 1 is the best tested
  variant with, best first, every variant no tested pair shows different from one already
  in the tier (so no tier holds a significantly different pair); then the same over the
  rest. Untested variants have no tier.
- ``auc_val_accuracy`` is the normalised area under the validation-accuracy curve.
- ``seconds_per_epoch_*`` and ``inference_ms_per_sample_*`` are the mean, std and 95%
  interval over the variant's succeeded trials that timed them.
- The verdict, its labelled ``answers`` and the notes are written by ``core.report.render``,
  ``core.report.answers`` and ``core.report.notes`` from this dict alone.
- Every float in the answer is finite or ``None``: JSON cannot carry NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from core.report.answers import answers
from core.report.design_block import design_block
from core.report.looks import ALPHA, Look, decide, look_of
from core.report.pairs import (
    PairLevels,
    as_interval,
    conclude,
    finite,
    moments,
    needs_more_seeds,
    pair_row,
    plan_of,
    rank_and_tier,
    tested_pairs,
)
from core.report.render import fairness_notes, verdict_sentence
from core.report.schema import PairDifference
from core.spec import DesignSpec
from core.status import ACTIVE, StopReason, TrialStatus
from models.analysis import Analysis

__all__ = [
    "ALPHA",
    "PAIRWISE_ROW_COLUMNS",
    "PRIMARY_METRICS",
    "REPORT_ROW_COLUMNS",
    "EpochPoint",
    "TrialResult",
    "build_report",
    "needs_more_seeds",
    "pairwise_rows",
    "report_rows",
    "tested_pairs",
]

PRIMARY_METRICS: Mapping[str, bool] = {
    "test_accuracy": True,
    "test_loss": False,
    "best_val_accuracy": True,
}
"""Each primary metric the report accepts, mapped to whether higher is better."""

DIVERGED = StopReason.DIVERGED
STOPPED_EARLY = (StopReason.EARLY_STOPPING.value, StopReason.TIME_BUDGET.value)

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
    metric: str = "test_accuracy"
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    succeeded: list[TrialResult] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    n_running: int = 0
    n_diverged: int = 0
    diverged_worst: list[int] = field(default_factory=list)
    params: int | None = None
    flops: int | None = None


ACCURACY_RANGE = (0.0, 1.0)
NON_NEGATIVE = (0.0, math.inf)
VARIANT_INTERVALS = "t_bounded"
"""``design.variant_intervals``: a variant's 95% interval is the t-interval intersected with
the metric's range (accuracies in [0, 1]; losses and timings at least 0). The true mean lies
in the range, so the intersection covers whenever the t-interval does."""


def _summarize(values: Sequence[float], bounds: tuple[float, float] = NON_NEGATIVE) -> _Summary:
    n = len(values)
    if n == 0:
        return _Summary(0)
    mean, std = moments(values)
    if n < 2:
        return _Summary(n, mean, None, None, values[0], values[0])
    half = float(special.stdtrit(n - 1, 0.975)) * std / math.sqrt(n)  # t.ppf, faster
    lo, hi = max(bounds[0], mean - half), min(bounds[1], mean + half)
    return _Summary(n, mean, std, (lo, hi), min(values), max(values))


def _range(metric: str) -> tuple[float, float]:
    return NON_NEGATIVE if metric == "test_loss" else ACCURACY_RANGE


def _mean(values: Iterable[float | None]) -> float | None:
    kept = _present(values)
    return math.fsum(kept) / len(kept) if kept else None


def _present(values: Iterable[float | None]) -> list[float]:
    return [v for v in (finite(x) for x in values) if v is not None]


# --- aggregation ------------------------------------------------------------------------


def _variant_names(variant_order: Sequence[str], trials: Sequence[TrialResult]) -> list[str]:
    names = list(dict.fromkeys(variant_order))
    seen = set(names)
    for t in trials:
        if t.variant not in seen:
            seen.add(t.variant)
            names.append(t.variant)
    return names


def _worst(trials: Sequence[TrialResult], metric: str, higher: bool) -> float | None:
    """The worst finite value of ``metric`` over the comparison's succeeded trials."""
    values = _present(getattr(t, metric) for t in trials if t.status == TrialStatus.SUCCEEDED)
    return (min(values) if higher else max(values)) if values else None


def _group(
    name: str,
    trials: Sequence[TrialResult],
    metric: str,
    info: Analysis | None,
    worst: float | None = None,
) -> _Group:
    """One variant's trials. A diverged trial counts against its variant for every primary
    metric: scored as it ended, or, when its metric is not finite (a NaN test loss), at the
    worst value any trial of the comparison reached (``diverged_scored_worst``)."""
    g = _Group(name, metric)
    for t in trials:
        if t.status == TrialStatus.SUCCEEDED:
            value = finite(getattr(t, metric))
            if value is None and t.stop_reason == DIVERGED and worst is not None:
                value = worst
                g.diverged_worst.append(t.seed)
            if value is None:
                g.missing.append(t.seed)
            else:
                g.succeeded.append(t)
                g.values.append(value)
                g.seeds.append(t.seed)
        elif t.status == TrialStatus.FAILED:
            g.failed.append(t.seed)
        elif t.status == TrialStatus.CANCELLED:
            g.cancelled.append(t.seed)
        elif t.status in ACTIVE:
            g.n_running += 1
        if t.stop_reason == DIVERGED:
            g.n_diverged += 1
    with_counts = [t for t in g.succeeded if t.params is not None] or list(trials)
    g.params = next((t.params for t in with_counts if t.params is not None), None)
    g.flops = next((t.flops for t in with_counts if t.flops is not None), None)
    if info is not None:
        g.params = g.params if g.params is not None else info.params
        g.flops = g.flops if g.flops is not None else info.flops
    return g


def _val_accuracies(t: TrialResult) -> list[tuple[int, float]]:
    return [(p.epoch, v) for p in t.curve if (v := finite(p.val_accuracy)) is not None]


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
    best = finite(t.best_val_accuracy)
    points = _val_accuracies(t)
    return best if best is not None else (max(v for _, v in points) if points else None)


def _final_val(t: TrialResult) -> float | None:
    points = _val_accuracies(t)
    return points[-1][1] if points else None


def _seconds_per_epoch(t: TrialResult) -> float | None:
    per_epoch = _mean(p.seconds for p in t.curve)
    if per_epoch is not None:
        return per_epoch
    seconds = finite(t.train_seconds)
    return seconds / t.epochs_done if seconds is not None and t.epochs_done > 0 else None


def _ci(s: _Summary) -> list[float] | None:
    return as_interval(s.ci95)


def _variant_block(g: _Group, info: Analysis | None) -> dict[str, Any]:
    ok = g.succeeded
    main = _summarize(g.values, _range(g.metric))
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
        "analysis": info.to_dict() if info is not None else None,
        "n": main.n,
        "n_failed": len(g.failed),
        "n_cancelled": len(g.cancelled),
        "n_running": g.n_running,
        "failed_seeds": sorted(g.failed),
        "cancelled_seeds": sorted(g.cancelled),
        "seeds_without_metric": sorted(g.missing),
        "stopped_early": {r: sum(t.stop_reason == r for t in ok) for r in STOPPED_EARLY},
        "n_diverged": g.n_diverged,
        "diverged_scored_worst": sorted(g.diverged_worst),
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


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float | np.floating):
        return finite(float(value))
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
    variant_info: Mapping[str, Analysis] | None = None,
    design: DesignSpec | None = None,
    differences: Sequence[PairDifference] = (),
) -> dict[str, Any]:
    """Aggregate trials into the report JSON: design, variants, pairwise conclusions, tiers,
    verdict and notes. ``design`` is the comparison's (``StoredSpec.design``: seeds, baseline,
    equivalence_margin, split; ``DesignSpec()``'s defaults without one); ``differences`` are
    ``core.report.schema.PairDifference`` models (or dicts) stored as they are."""
    if primary_metric not in PRIMARY_METRICS:
        raise ValueError(f"unknown primary metric {primary_metric!r}")
    higher = PRIMARY_METRICS[primary_metric]
    info = variant_info or {}
    names = _variant_names(variant_order, trials)
    by_name: dict[str, list[TrialResult]] = {n: [] for n in names}
    for t in trials:
        by_name[t.variant].append(t)
    worst = _worst(trials, primary_metric, higher)
    groups = [_group(n, by_name[n], primary_metric, info.get(n), worst) for n in names]
    variants = [_variant_block(g, info.get(g.name)) for g in groups]
    plan = plan_of(design, names)
    complete = not any(g.n_running for g in groups)
    planned = max((len(by_name[n]) for n in names), default=0)
    look = look_of(plan.schedule, planned, plan.boundary, complete)
    family = tested_pairs(names, plan.baseline, plan.contrasts)
    group_of = {g.name: g for g in groups}
    levels = _pair_levels(look, max(1, len(family)))
    pairs = [
        pair_row(group_of[a], group_of[b], levels=levels, margin=plan.margin) for a, b in family
    ]
    decisions = decide([(group_of[a], group_of[b]) for a, b in family], look, plan.margin)
    conclude(
        pairs,
        decisions,
        higher=higher,
        margin=plan.margin,
        complete=complete,
        levels=levels,
        max_seeds=None if plan.schedule is None else plan.schedule[-1],
    )
    for v in variants:
        v["rank"] = None
        v["tier"] = None
    ranking = rank_and_tier(variants, pairs, higher)
    design_out = design_block(
        design, plan, look, family, pairs, levels.interval_method, VARIANT_INTERVALS
    )
    report: dict[str, Any] = _json_safe(
        {
            "comparison_id": comparison_id,
            "final": final,
            "interim": not final,
            "primary_metric": primary_metric,
            "higher_is_better": higher,
            "design": design_out,
            "variants": variants,
            "pairwise": pairs,
            "ranking": ranking,
            "differences": [_dump(d) for d in differences],
        }
    )
    report["verdict"] = verdict_sentence(report)
    report["answers"] = answers(report, verdict_sentence(report, differences=False))
    report["notes"] = fairness_notes(report)
    return report


def _pair_levels(look: Look, family: int) -> PairLevels:
    """Fixed design: 95% t-intervals, Bonferroni over the family at alpha. Adaptive design:
    repeated confidence intervals, at one minus the current look's boundary level for alpha
    (each pair) and for alpha / family (the adjusted one)."""
    if look.boundary is None:
        return PairLevels(0.95, 1.0 - ALPHA / family, ALPHA / family, ALPHA / family, ALPHA, "t")
    return PairLevels(
        interval=1.0 - look.level(ALPHA),
        adjusted=1.0 - look.level(ALPHA / family),
        per_pair=look.level(ALPHA / family),
        final_per_pair=look.levels(ALPHA / family)[-1],
        level=look.level(ALPHA / family),
        interval_method=f"repeated_{look.boundary}",
    )


def _dump(d: PairDifference | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(d, PairDifference):
        return d.model_dump(mode="json")
    return PairDifference.model_validate(d).model_dump(mode="json")


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
