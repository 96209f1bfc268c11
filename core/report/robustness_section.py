"""The report's answer to "more robust?": per tested pair, accuracy under corruption, how
much each variant loses from clean to corrupted, and the mCE against a reference variant.

Input: the rows ``/robustness`` serves (``core.report.robustness_rows``), one per (trial,
corruption, severity) and one ``clean`` row per trial (severity 0, its clean test accuracy).
For each variant and seed, its *corrupted accuracy* is the mean over the requested
(corruption, severity) copies, and its *drop* is clean accuracy less corrupted accuracy.

Per tested pair (the family of the clean score: the baseline's pairs, the named contrasts,
or all pairs), on the seeds both variants have with every copy scored:

- ``corrupted``: the paired t-test of the per-seed corrupted accuracies (the exact sign test
  when the differences have no spread), its p-value Holm-adjusted over the family and its
  interval Bonferroni-adjusted (1 - 0.05 / family), as for the clean score at a fixed design;
- ``per_corruption``: the same per corruption (averaged over the severities), Holm-adjusted
  within the pair;
- ``drop``: the same test of the per-seed drops, a - b: negative when a degrades less. This
  is a claim apart from clean accuracy (a model can be better on clean data and lose more
  under corruption), and the sentence keeps them apart;
- ``mce``: each variant's mean corruption error relative to the reference (the baseline, else
  the first variant: ``core.report.robustness.corruption_errors`` and ``mce``), and the
  relative mCE (what it loses beyond its clean error, relative to the reference's loss).

A comparison with adaptive seeds is analysed here at the seeds it has, as a fixed design:
the robustness figures are not part of its stopping rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from core.report.format import gap, gap_interval, p_value
from core.report.looks import ALPHA
from core.report.robustness import corruption_errors, mce
from core.report.stats import MIN_SEEDS, holm, pair_p, paired_t

__all__ = ["CLEAN", "robustness_lines", "robustness_section"]

CLEAN = "clean"
"""The corruption name of a trial's clean test accuracy in the rows (severity 0)."""

Table = Mapping[tuple[str, str, int], Mapping[int, float]]
"""Per (variant, corruption, severity), accuracy by seed."""


def _table(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int], dict[int, float]]:
    out: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for r in rows:
        out[(str(r["variant"]), str(r["corruption"]), int(r["severity"]))][int(r["seed"])] = float(
            r["accuracy"]
        )
    return out


def _per_seed(
    table: Table, variant: str, cells: Sequence[tuple[str, int]]
) -> tuple[dict[int, float], dict[int, float]]:
    """(corrupted accuracy, drop) by seed, for the seeds with the clean score and every cell."""
    clean = table.get((variant, CLEAN, 0), {})
    seeds = set(clean)
    for c, s in cells:
        seeds &= set(table.get((variant, c, s), {}))
    corrupted = {k: float(np.mean([table[(variant, c, s)][k] for c, s in cells])) for k in seeds}
    return corrupted, {k: clean[k] - corrupted[k] for k in seeds}


def _test(
    a: Mapping[int, float], b: Mapping[int, float], adjusted_level: float = 0.95
) -> dict[str, Any]:
    """The paired test of a - b over the seeds both have (untested under ``MIN_SEEDS``)."""
    seeds = sorted(set(a) & set(b))
    xa, xb = [a[k] for k in seeds], [b[k] for k in seeds]
    out: dict[str, Any] = {"seeds": len(seeds), "diff": None, "ci95": None, "ci_adjusted": None}
    out["p"] = None
    if not seeds:
        return out
    out["diff"] = float(np.mean(xa) - np.mean(xb))
    if len(seeds) < MIN_SEEDS:
        return out
    t = paired_t(xa, xb, adjusted_level=adjusted_level)
    out["ci95"] = list(t.ci95) if t.ci95 is not None else [t.diff, t.diff]
    out["ci_adjusted"] = list(t.ci_adjusted) if t.ci_adjusted is not None else [t.diff, t.diff]
    out["p"] = pair_p(xa, xb, t, paired=True)
    if out["p"] is None:  # no difference at all on any seed
        out["p"] = 1.0
    return out


def _holm_into(tests: Sequence[dict[str, Any]], key: str = "p_adjusted") -> None:
    tested = [t for t in tests if t["p"] is not None]
    for t, p in zip(tested, holm([t["p"] for t in tested]), strict=True):
        t[key] = p
    for t in tests:
        t.setdefault(key, None)


def _errors(table: Table, variant: str, cells: Sequence[tuple[str, int]]) -> dict[Any, float]:
    """Error (1 - accuracy) by (corruption, severity), averaged over seeds."""
    return {
        (c, s): 1.0 - float(np.mean(list(table[(variant, c, s)].values())))
        for c, s in cells
        if table.get((variant, c, s))
    }


def _clean_error(table: Table, variant: str) -> float | None:
    clean = table.get((variant, CLEAN, 0))
    return 1.0 - float(np.mean(list(clean.values()))) if clean else None


def _mce(
    table: Table, variant: str, reference: str, cells: Sequence[tuple[str, int]]
) -> tuple[float | None, float | None]:
    """(mCE, relative mCE) of ``variant`` against ``reference``."""
    model, base = _errors(table, variant, cells), _errors(table, reference, cells)
    if not model or not base:
        return None, None
    ce = mce(corruption_errors(model, base))
    clean = (_clean_error(table, variant), _clean_error(table, reference))
    if clean[0] is None or clean[1] is None:
        return ce, None
    return ce, mce(corruption_errors(model, base, clean=(clean[0], clean[1])))


def _variant_rows(
    table: Table, names: Sequence[str], reference: str, cells: Sequence[tuple[str, int]]
) -> list[dict[str, Any]]:
    out = []
    for name in names:
        corrupted, drop = _per_seed(table, name, cells)
        clean = table.get((name, CLEAN, 0), {})
        ce, rce = _mce(table, name, reference, cells)
        out.append(
            {
                "name": name,
                "seeds": len(corrupted),
                "clean_accuracy": float(np.mean(list(clean.values()))) if clean else None,
                "corrupted_accuracy": float(np.mean(list(corrupted.values())))
                if corrupted
                else None,
                "drop": float(np.mean(list(drop.values()))) if drop else None,
                "mce": ce,
                "relative_mce": rce,
            }
        )
    return out


def _pair(
    table: Table, a: str, b: str, cells: Sequence[tuple[str, int]], family: int
) -> dict[str, Any]:
    adjusted = 1.0 - ALPHA / max(1, family)
    corrupted_a, drop_a = _per_seed(table, a, cells)
    corrupted_b, drop_b = _per_seed(table, b, cells)
    per_corruption = []
    for c in dict.fromkeys(c for c, _ in cells):
        mine = [(c2, s) for c2, s in cells if c2 == c]
        row = _test(_per_seed(table, a, mine)[0], _per_seed(table, b, mine)[0])
        per_corruption.append({"corruption": c, **row})
    _holm_into(per_corruption, "p_holm")
    return {
        "a": a,
        "b": b,
        "corrupted": _test(corrupted_a, corrupted_b, adjusted),
        "drop": _test(drop_a, drop_b, adjusted),
        "per_corruption": per_corruption,
    }


def robustness_section(
    rows: Sequence[Mapping[str, Any]],
    *,
    pairs: Sequence[tuple[str, str]],
    names: Sequence[str],
    reference: str,
    corruptions: Sequence[str],
    severities: Sequence[int],
) -> dict[str, Any]:
    """The report's ``robustness``: the design, per variant its levels and mCE, per tested
    pair the tests and one sentence."""
    table = _table(rows)
    cells = [(c, s) for c in corruptions for s in severities]
    out_pairs = [_pair(table, a, b, cells, len(pairs)) for a, b in pairs]
    _holm_into([p["corrupted"] for p in out_pairs])
    _holm_into([p["drop"] for p in out_pairs])
    variants = _variant_rows(table, names, reference, cells)
    by_name = {v["name"]: v for v in variants}
    for p in out_pairs:
        p["conclusion"] = _conclusion(p["corrupted"], p["a"], p["b"])
        p["degrades_less"] = _conclusion(p["drop"], p["b"], p["a"])
        p["sentence"] = _sentence(p, by_name, reference, _where(corruptions, severities))
    return {
        "corruptions": list(corruptions),
        "severities": list(severities),
        "reference": reference,
        "alpha": ALPHA,
        "multiplicity": "holm",
        "interval_adjustment": "bonferroni",
        "variants": variants,
        "pairs": out_pairs,
    }


def _conclusion(test: Mapping[str, Any], a: str, b: str) -> str | None:
    """Which side the test favours at the adjusted level (``a`` when the difference is
    positive), "neither" when not shown, None when untested."""
    p = test.get("p_adjusted")
    if p is None:
        return None
    if p >= ALPHA:
        return "neither"
    return a if test["diff"] > 0 else b


def _figures(test: Mapping[str, Any]) -> str:
    ci = gap_interval(test["ci_adjusted"], "test_accuracy")
    return f"adjusted 95% CI {ci}, adjusted p {_p(test['p_adjusted'])}"


def _p(p: float | None) -> str:
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"


def _where(corruptions: Sequence[str], severities: Sequence[int]) -> str:
    """``under 6 corruptions at severity 3`` / ``under rotate at severities 2 and 4``."""
    what = corruptions[0] if len(corruptions) == 1 else f"{len(corruptions)} corruptions"
    levels = [str(s) for s in severities]
    at = levels[0] if len(levels) == 1 else f"{', '.join(levels[:-1])} and {levels[-1]}"
    return f"under {what} at severit{'y' if len(levels) == 1 else 'ies'} {at}"


def _sentence(
    p: Mapping[str, Any],
    variants: Mapping[str, Mapping[str, Any]],
    reference: str,
    where: str,
) -> str:
    a, b = p["a"], p["b"]
    corrupted, drop = p["corrupted"], p["drop"]
    if p["conclusion"] is None:
        return (
            f"{a} vs {b} {where}: too few seeds scored on every corrupted copy to test "
            f"(fewer than {MIN_SEEDS} paired)."
        )
    diff = gap(corrupted["diff"], "test_accuracy", signed=True)
    if p["conclusion"] == "neither":
        first = f"{where}, {a} and {b} are not shown to differ in accuracy ({a} {diff} points"
    else:
        winner = p["conclusion"]
        loser = b if winner == a else a
        size = gap(abs(corrupted["diff"]), "test_accuracy", unit=True)
        first = f"{where}, {winner} is more accurate than {loser} by {size} ({a} {diff}"
    first += f"; {_figures(corrupted)})"
    da = gap(variants[a]["drop"], "test_accuracy")
    db = gap(variants[b]["drop"], "test_accuracy")
    if p["degrades_less"] in (None, "neither"):
        second = f"neither is shown to degrade less from clean data (drops {da} and {db} points"
    else:
        second = f"apart from clean accuracy, {p['degrades_less']} degrades less (drops {da} and "
        second += f"{db} points"
    second += f"; adjusted p {_p(drop['p_adjusted'])})"
    ma, mb = variants[a]["mce"], variants[b]["mce"]
    third = ""
    if ma is not None and mb is not None:
        third = f"; mCE {ma:.2f} and {mb:.2f} ({reference} = 1)"
    text = f"{first[0].upper()}{first[1:]}; {second}{third}."
    return text


def _level(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def robustness_lines(section: Mapping[str, Any] | None, escape: Callable[[str], str]) -> list[str]:
    """The Markdown section "More robust?" (nothing without robustness); ``escape`` makes a
    text (a sentence, a variant's name) inert in Markdown."""
    if not section:
        return []
    levels = section["severities"]
    intro = (
        f"Scored on corrupted copies of each trial's test set: {', '.join(section['corruptions'])}"
        f" at severit{'y' if len(levels) == 1 else 'ies'} {', '.join(map(str, levels))} (the "
        "same corrupted examples for every variant of a seed). Corrupted accuracy is the mean "
        "over these "
        "copies; the drop is clean accuracy less corrupted accuracy, a claim apart from clean "
        f"accuracy; mCE is relative to {section['reference']} (= 1, lower is more robust)."
    )
    lines = ["## More robust?", "", escape(intro), ""]
    lines += [f"- {escape(p['sentence'])}" for p in section["pairs"]]
    lines += ["", "| Variant | clean | corrupted | drop (points) | mCE | relative mCE |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    for v in section["variants"]:
        drop = "—" if v["drop"] is None else f"{100 * v['drop']:.2f}"
        lines.append(
            f"| {escape(v['name'])} | {_level(v['clean_accuracy'])} "
            f"| {_level(v['corrupted_accuracy'])} | {drop} | {_ratio(v['mce'])} "
            f"| {_ratio(v['relative_mce'])} |"
        )
    if section["pairs"]:
        lines += ["", "Per corruption (a - b in points; p Holm-adjusted within the pair):", ""]
        lines += ["| a | b | corruption | a - b | 95% CI | p | Holm p |"]
        lines += ["| --- | --- | --- | --- | --- | --- | --- |"]
        for p in section["pairs"]:
            for c in p["per_corruption"]:
                lines.append(
                    f"| {escape(p['a'])} | {escape(p['b'])} | {escape(c['corruption'])} "
                    f"| {gap(c['diff'], 'test_accuracy', signed=True)} "
                    f"| {gap_interval(c['ci95'], 'test_accuracy')} | {p_value(c['p'])} "
                    f"| {p_value(c['p_holm'])} |"
                )
    return [*lines, ""]
