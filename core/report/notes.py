"""The report's notes: partial results, few seeds, lost trials, unequal budgets and sizes,
and what a pair's figures cannot say. They read only the report's JSON dict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from core.report import format as fmt
from core.report.phrases import RATIO_LIMIT, Report
from core.report.phrases import by as _by
from core.report.phrases import label as _label
from core.report.phrases import plural as _plural
from core.report.phrases import variant as _variant
from core.report.stats import MIN_SEEDS
from core.status import StopReason

__all__ = ["fairness_notes"]


def _trial_notes(report: Report, v: Mapping[str, Any], anyone: bool) -> list[str]:
    notes: list[str] = []
    name, n = v["name"], v["n"]
    label = _label(report)
    so_far = "" if report["final"] else " so far"
    if n == 0 and anyone:
        notes.append(f"{name} has no finished trial{so_far}, so it is not compared.")
    elif n == 1:
        notes.append(
            f"{name} has only 1 finished seed{so_far}: no confidence interval and no "
            f"significance test are possible; run at least {MIN_SEEDS}."
        )
    elif 1 < n < MIN_SEEDS and v.get("std") == 0.0:
        notes.append(
            f"{name} has only {n} finished seeds{so_far} and they gave the same {label}: "
            "its interval has zero width, which shows no spread among so few seeds, not "
            f"certainty; no significance test is run against it; run at least {MIN_SEEDS}."
        )
    elif 1 < n < MIN_SEEDS:
        notes.append(
            f"{name} has only {n} finished seeds{so_far}: its confidence interval is wide "
            f"and no significance test is run against it; run at least {MIN_SEEDS}."
        )
    for key, noun, suffix in (
        ("failed_seeds", "failed trial", ""),
        ("cancelled_seeds", "cancelled trial", ""),
        ("seeds_without_metric", "succeeded trial", f" without a finite {label}"),
    ):
        if seeds := v[key]:
            listed = ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))
            counted = _plural(len(seeds), noun) + suffix
            notes.append(f"{name}: {counted} ({listed}) left out of the statistics.")
    if v.get("n_diverged"):
        notes.append(
            f"{name}: {_plural(v['n_diverged'], 'trial')} diverged (the training loss became "
            "NaN or infinite); they count as the variant's results, evaluated as they ended, "
            "because instability belongs to the architecture."
        )
    if worst := v.get("diverged_scored_worst"):
        listed = ", ".join(map(str, worst))
        notes.append(
            f"{name}: {_plural(len(worst), 'diverged trial')} (seed {listed}) ended without a "
            f"finite {label}; scored at the worst {label} of any trial of the comparison, so "
            "they count against the variant."
        )
    stopped = v["stopped_early"]
    if sum(stopped.values()):
        how = [
            f"{k} by "
            + ("early stopping" if reason == StopReason.EARLY_STOPPING else "the time budget")
            for reason, k in stopped.items()
            if k
        ]
        notes.append(
            f"{name}: {sum(stopped.values())} of {n} trials stopped before their planned "
            f"epochs ({', '.join(how)}), so not every trial trained for the same budget."
        )
    return notes


def _matched_notes(report: Report) -> list[str]:
    """Variants resized to another's size (a variant's ``match``): which to which, by what,
    the factor and the gap reached."""
    notes: list[str] = []
    for name, m in ((report.get("design") or {}).get("matched") or {}).items():
        what = "parameters" if m["by"] == "params" else "FLOPs"
        notes.append(
            f"The sizes are matched: {name}'s widths were scaled by {m['factor']:.3g} to "
            f"{m['variant']}'s {what} ({m['count']:,} vs {m['target']:,}, a gap of "
            f"{fmt.share(m['gap'], signed=True)}, within the {fmt.share(m['tolerance'])} "
            "asked), so a difference between "
            "them is not one of size."
        )
    return notes


def _ratio_notes(report: Report) -> list[str]:
    notes: list[str] = []
    variants = report["variants"]
    for what, key, source in (("parameters", "params", "capacity"), ("FLOPs", "flops", "compute")):
        for i, va in enumerate(variants):
            for vb in variants[i + 1 :]:
                xa, xb = va[key], vb[key]
                if not xa or not xb or max(xa, xb) <= RATIO_LIMIT * min(xa, xb):
                    continue
                big, small = (va, vb) if xa > xb else (vb, va)
                hi, lo = max(xa, xb), min(xa, xb)
                notes.append(
                    f"{big['name']} has {hi / lo:.1f}x the {what} of {small['name']} "
                    f"({hi:,} vs {lo:,}): a difference in {_label(report)} may come from "
                    f"{source}, not from the architecture's design."
                )
    return notes


def _pair_notes(report: Report) -> list[str]:
    notes: list[str] = []
    m = report["primary_metric"]
    label = _label(report)
    exact = (
        "the t-test is undefined, so the pair is judged by an exact test of the constant "
        "difference (sign test, or Mann-Whitney when the seeds differ), which needs 6 seeds "
        "to show a difference and 5 to show equivalence"
    )
    for p in report["pairwise"]:
        if p["conclusion"] == "untested" or p["diff"] is None:
            continue
        va, vb, diff = _variant(report, p["a"]), _variant(report, p["b"]), p["diff"]
        both_constant = va["std"] == 0.0 and vb["std"] == 0.0
        if p["p_value"] is None and both_constant and diff == 0.0:
            notes.append(
                f"{p['a']} and {p['b']} gave the same {label} ({fmt.level(va['mean'], m)}) on "
                f"every seed: with no spread {exact}."
            )
        elif (p["p_value"] is None or p.get("exact_test")) and both_constant:
            notes.append(
                f"{p['a']} and {p['b']} each gave one {label} on every seed "
                f"({fmt.level(va['mean'], m)} vs {fmt.level(vb['mean'], m)}): with no spread "
                f"{exact}."
            )
        elif p["p_value"] is None or p.get("exact_test"):
            notes.append(
                f"{p['a']} - {p['b']} is {fmt.gap(diff, m, signed=True)} on every seed: the "
                f"per-seed differences have no spread, so {exact}."
            )
        elif p["conclusion"] == "inconclusive" and diff != 0.0:
            spread = max(va["std"] or 0.0, vb["std"] or 0.0)
            ci = p.get("ci95")
            excludes_zero = ci is not None and ci[0] * ci[1] > 0
            if abs(diff) < spread and not excludes_zero:
                notes.append(
                    f"The gap between {p['a']} and {p['b']} ({_by(report, abs(diff))}) is "
                    f"smaller than the seed-to-seed spread (std up to "
                    f"{fmt.gap(spread, m)}) and its interval includes zero: another set of "
                    "seeds could rank them the other way."
                )
    return notes


def _design_notes(report: Report) -> list[str]:
    notes: list[str] = []
    design = report.get("design") or {}
    if report["primary_metric"] == "best_val_accuracy":
        notes.append(
            "The primary metric is best_val_accuracy, the best of the validation accuracies "
            "seen during training: choosing the maximum makes it optimistically biased, and the "
            "validation data also steered early stopping. test_accuracy is the unbiased measure."
        )
    if design.get("split") == "fixed" and report["pairwise"]:
        notes.append(
            "The split is fixed for the whole comparison: the intervals cover weight "
            "initialisation and data order only, not which examples were drawn for testing."
        )
    notes.extend(_training_notes(design.get("training") or {}))
    looks = design.get("looks") or {}
    if not looks.get("complete", True):
        notes.append(
            "Conclusions are withheld until every trial of the current look has ended: an "
            "interim report never claims a difference."
        )
    elif report.get("interim") and design.get("sequential"):
        notes.append(
            f"Look {looks.get('current')} of {looks.get('planned')}: each pair's p-value is "
            f"compared with this look's group-sequential boundary (level "
            f"{fmt.nominal(looks.get('level'))} for one pair); a pair decided at a look stays "
            "decided, and more seeds may follow for the others."
        )
    return notes


def _training_notes(differ: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Variants with their own training settings: the comparison is of each architecture
    with its training."""
    if not differ:
        return []
    settings = sorted({k for values in differ.values() for k in values})
    each = "; ".join(
        f"{name}: " + ", ".join(f"{k}={json.dumps(values.get(k))}" for k in settings)
        for name, values in differ.items()
    )
    return [
        f"The variants do not train alike ({each}), so a difference is that of each "
        "architecture with its training, not of the architectures alone."
    ]


def fairness_notes(report: Report) -> list[str]:
    """The report's notes: partial results, few seeds, lost trials, unequal budgets and sizes."""
    variants = report["variants"]
    done = sum(v["n"] for v in variants)
    notes: list[str] = []
    if not report["final"]:
        running = sum(v["n_running"] for v in variants)
        if running:
            notes.append(
                f"This report is partial: {_plural(done, 'trial')} finished and {running} "
                "still queued or running, so the numbers will change."
            )
        else:
            notes.append(
                f"This report is interim: the {_plural(done, 'trial')} so far have finished, "
                "but the comparison has not ended (more seeds may follow)."
            )
    for v in variants:
        notes.extend(_trial_notes(report, v, anyone=done > 0))
    notes.extend(_design_notes(report))
    notes.extend(_matched_notes(report))
    notes.extend(_ratio_notes(report))
    notes.extend(_pair_notes(report))
    return notes
