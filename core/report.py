"""The comparison report: a pure function of the stored trial rows, answered as JSON.

``build_report`` aggregates each variant's primary metric over its succeeded trials, runs
Welch's t-test on every pair (Holm-adjusted across pairs), and writes a one-sentence
verdict plus fairness notes. Only ``succeeded`` trials enter the statistics; failed,
cancelled, queued and running ones are counted and noted.

Choices worth knowing:

- ``std`` is the sample standard deviation (ddof=1); ``ci95`` is the t-interval
  ``mean ± t(0.975, n-1)·std/√n``. Both are ``None`` when ``n < 2``.
- A pair is tested only when both sides have ``n >= MIN_SEEDS`` (3): with two seeds a
  t-test has one or two degrees of freedom and its verdict is noise, so no test is run and
  the verdict and notes say so. When both sides are constant
  (zero spread) no t-test is possible: ``p_value``, ``ci95`` and ``effect_size`` are
  ``None`` and the pair is not significant; when the constants differ a note says so.
  A sample counts as constant when its range is within 1e-12 of its magnitude, so
  float noise never produces a spurious "significant" difference.
- ``effect_size`` is Cohen's d, ``(mean_a - mean_b) / pooled sd``.
- ``auc_val_accuracy`` is the normalised area under the validation-accuracy curve: the
  mean of a trial's per-epoch validation accuracy (unit-spaced epochs, so area / epochs),
  averaged over trials. It lies in [0, 1] and rewards learning early.
- ``seconds_per_epoch_mean`` is wall time per epoch as the worker measured it: the training
  pass plus that epoch's validation pass (and, in epoch 1, tracing); ``train_seconds_mean``
  is the whole ``fit``. Both come from one device per trial, stored with the trial.
- ``inference_ms_per_sample_mean`` is timed by one trial per variant (the first seed, or a
  later one when the first ended without timing it) on the worker's device.
- ``rank`` is 1-based over variants with data; variants without data are listed last
  in ``ranking`` and have ``rank: None``.
- The verdict and notes are written by ``core.report_render`` from this dict alone.
- Every float in the answer is finite or ``None``: JSON cannot carry NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from core.report_render import MIN_SEEDS, fairness_notes, verdict_sentence

__all__ = [
    "ALPHA",
    "PRIMARY_METRICS",
    "REPORT_ROW_COLUMNS",
    "EpochPoint",
    "TrialResult",
    "WelchResult",
    "build_report",
    "cohens_d",
    "holm_adjust",
    "report_rows",
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

STOPPED_EARLY = ("early_stopping", "time_budget")
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
)
"""The CSV columns of ``report_rows``, in order."""


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
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
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
    """Holm's step-down adjustment of p-values, returned in the input order."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


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
        "rank": None,
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
        "inference_ms_per_sample_mean": _mean(t.inference_ms_per_sample for t in ok),
        "per_seed": [{"seed": s, "value": v} for s, v in per_seed],
    }


def _pairwise(groups: Sequence[_Group]) -> list[dict[str, Any]]:
    pairs: list[dict[str, Any]] = []
    for i, ga in enumerate(groups):
        for gb in groups[i + 1 :]:
            na, nb = len(ga.values), len(gb.values)
            row: dict[str, Any] = {
                "a": ga.name,
                "b": gb.name,
                "n_a": na,
                "n_b": nb,
                "diff": None,
                "ci95": None,
                "df": None,
                "p_value": None,
                "p_adjusted": None,
                "effect_size": None,
                "significant": False,
            }
            if na and nb:
                row["diff"] = _finite(_moments(ga.values)[0] - _moments(gb.values)[0])
            if min(na, nb) >= MIN_SEEDS and row["diff"] is not None:
                w = welch_test(ga.values, gb.values)
                row["ci95"] = _interval(w.ci95)
                row["df"] = w.df
                row["p_value"] = w.p_value
                row["effect_size"] = cohens_d(ga.values, gb.values)
            pairs.append(row)
    tested = [p for p in pairs if p["p_value"] is not None]
    for p, adj in zip(tested, holm_adjust([p["p_value"] for p in tested]), strict=True):
        p["p_adjusted"] = adj
        p["significant"] = adj < ALPHA
    return pairs


def _ranking(variants: Sequence[dict[str, Any]], higher: bool) -> list[str]:
    with_data = [v for v in variants if v["mean"] is not None]
    with_data.sort(key=lambda v: -v["mean"] if higher else v["mean"])
    return [v["name"] for v in with_data] + [v["name"] for v in variants if v["mean"] is None]


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
) -> dict[str, Any]:
    """Aggregate trials into the report JSON: variants, pairwise tests, ranking, verdict."""
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
    ranking = _ranking(variants, higher)
    rank_of = {name: i + 1 for i, name in enumerate(ranking)}
    for v in variants:
        v["rank"] = rank_of[v["name"]] if v["n"] else None
    report: dict[str, Any] = _json_safe(
        {
            "comparison_id": comparison_id,
            "final": final,
            "primary_metric": primary_metric,
            "higher_is_better": higher,
            "variants": variants,
            "pairwise": _pairwise(groups),
            "ranking": ranking,
        }
    )
    report["verdict"] = verdict_sentence(report)
    report["notes"] = fairness_notes(report)
    return report


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
            }
        )
    return rows
