"""The report in words: its verdict and notes, and its Markdown, terminal and CSV forms.

Every function here reads only the JSON dict that ``core.report.build.build_report`` makes, so
the words can be regenerated from a stored report. Numbers are written by
``core.report.format``, one way everywhere.

The verdict is a few plain sentences:

1. No succeeded trial: "No trial has finished yet." (or why nothing can be compared).
2. One variant with data: its level and interval, and that nothing compares with it.
3. Otherwise one sentence per pair of the tested family, in the family's order (the
   baseline's pairs first when there is a baseline), each with its conclusion and figures:
   better (the gap, its 95% interval, the Holm-adjusted p and Hedges' g), equivalent (within
   the margin, with the TOST p), inconclusive (the interval and the seeds that would decide
   it), untested (fewer than ``MIN_SEEDS`` seeds), or withheld while the look's trials run.
4. A sentence per variant whose trials diverged, then each difference's own sentence.

An interim report (``interim`` true) starts with "Interim", the look and the trials done.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.errors import without_terminal_codes
from core.report import format as fmt
from core.report.differences import differences_table
from core.report.markdown import md_escape
from core.report.markdown import md_table as _md_table
from core.report.notes import fairness_notes
from core.report.phrases import RATIO_LIMIT, Report
from core.report.phrases import join as _join
from core.report.phrases import label as _label
from core.report.phrases import plural as _plural
from core.report.phrases import seeds as _seeds
from core.report.phrases import variant as _variant
from core.report.robustness_section import robustness_lines
from core.report.stats import MIN_SEEDS
from core.report.tuning import tuning_markdown

__all__ = [
    "MIN_SEEDS",
    "RATIO_LIMIT",
    "fairness_notes",
    "md_escape",
    "render_markdown",
    "render_text",
    "rows_to_csv",
    "verdict_sentence",
]


def _oriented(report: Report, p: Mapping[str, Any], winner: str) -> tuple[float, list[float]]:
    """The winner's advantage and its interval, positive = better."""
    sign = 1.0 if (p["a"] == winner) == bool(report["higher_is_better"]) else -1.0
    ci = p["ci95"] or [p["diff"], p["diff"]]
    return sign * p["diff"], sorted([sign * ci[0], sign * ci[1]])


def _sequential(report: Report) -> bool:
    return bool((report.get("design") or {}).get("sequential"))


def _ci_name(report: Report) -> str:
    return "95% repeated CI" if _sequential(report) else "unadjusted 95% CI"


def _p_clause(report: Report, p: Mapping[str, Any]) -> str | None:
    """The pair's p-value, with the level it is judged at in a sequential design."""
    if p["p_value"] is None:
        return None
    exact = {"sign": "exact sign test ", "mann_whitney": "exact Mann-Whitney "}.get(
        p.get("exact_test") or "", ""
    )
    if _sequential(report):
        looks = (report.get("design") or {}).get("looks") or {}
        at, planned = p.get("decided_at_look"), looks.get("planned")
        if at is not None and p.get("decision_p") is not None:
            now = ""
            if at != looks.get("current"):
                now = f"; p = {fmt.nominal(p['p_value'])} now"
            return (
                f"decided at look {at} of {planned}: {exact}p = "
                f"{fmt.nominal(p['decision_p'])}, below its level {fmt.nominal(p['level'])}{now}"
            )
        below = "below" if p["p_value"] < (p["level"] or 0.0) else "not below"
        return (
            f"{exact}p = {fmt.nominal(p['p_value'])}, {below} the level "
            f"{fmt.nominal(p['level'])} of look {looks.get('current')} of {planned}"
        )
    if p["p_adjusted"] is None:
        return None
    return f"{exact}adjusted p {_p(p['p_adjusted'])}"


def _stats_clause(report: Report, p: Mapping[str, Any], ci: Sequence[float] | None) -> str:
    m = report["primary_metric"]
    parts = []
    if ci is not None and p["ci95"] is not None:
        parts.append(f"{_ci_name(report)} {fmt.gap_interval(ci, m)}")
    if (clause := _p_clause(report, p)) is not None:
        parts.append(clause)
    if p["effect_size"] is not None:
        parts.append(f"Hedges' g {fmt.effect(abs(p['effect_size']))}")
    return f" ({'; '.join(parts)})" if parts else ""


def _p(p: float) -> str:
    text = fmt.p_value(p)
    return text if text.startswith("<") else f"= {text}"


def _levels(report: Report, a: str, b: str) -> str:
    m = report["primary_metric"]
    va, vb = _variant(report, a), _variant(report, b)
    return f"{fmt.level(va['mean'], m)} vs {fmt.level(vb['mean'], m)}"


def _practical(report: Report, p: Mapping[str, Any]) -> str:
    m = report["primary_metric"]
    margin = (report.get("design") or {}).get("equivalence_margin")
    if margin is None or p.get("practical") is None:
        return ""
    within = f"±{fmt.gap(margin, m, unit=m != 'test_loss')}"
    return {
        "beyond_margin": f"; the gap is beyond the {within} margin",
        "within_margin": f"; but the gap is within the {within} margin: negligible in practice",
        "undetermined": f"; whether the gap exceeds the {within} margin is undetermined",
    }[str(p["practical"])]


def _better_sentence(report: Report, p: Mapping[str, Any], ns: str) -> str:
    m = report["primary_metric"]
    winner, loser = (p["a"], p["b"]) if p["conclusion"] == "a_better" else (p["b"], p["a"])
    adv, ci = _oriented(report, p, winner)
    return (
        f"{winner} is better than {loser}: {_levels(report, winner, loser)} "
        f"{_label(report)}, by {fmt.gap(adv, m, unit=m != 'test_loss')}"
        f"{_stats_clause(report, p, ci)}, {ns}{_practical(report, p)}"
    )


def _equivalent_sentence(report: Report, p: Mapping[str, Any], ns: str) -> str:
    m = report["primary_metric"]
    a, b = p["a"], p["b"]
    margin = (report.get("design") or {}).get("equivalence_margin")
    within = f"±{fmt.gap(margin, m, unit=m != 'test_loss')}" if margin is not None else ""
    eq = p["equivalence_p_adjusted"]
    if p["p_value"] is None or p.get("exact_test"):
        return (
            f"{a} and {b} are equivalent within {within}: the per-seed difference is "
            f"{fmt.gap(p['diff'], m, signed=True)} on every one of {ns}, with no spread "
            f"(exact equivalence test, adjusted p {_p(eq)})"
        )
    diff_text = f"{a} - {b} = {fmt.gap(p['diff'], m, signed=True, unit=m != 'test_loss')}"
    eq_text = f"; adjusted equivalence p {_p(eq)}" if eq is not None else ""
    if _sequential(report):
        eq_text += f", level {fmt.nominal(p['level'])} at look {p.get('decided_at_look')}"
    return (
        f"{a} and {b} are equivalent within {within}: {_levels(report, a, b)} "
        f"{_label(report)}, {diff_text} (90% CI {fmt.gap_interval(p.get('equivalence_ci90'), m)}, "
        f"the interval of a 5% equivalence test{eq_text}), {ns}"
    )


def _needed(report: Report, p: Mapping[str, Any]) -> str:
    needed = p.get("seeds_needed")
    if needed is None:
        return ""
    looks = (report.get("design") or {}).get("looks") or {}
    if p.get("seeds_needed_beyond_max"):
        most = (looks.get("seeds_per_variant") or [needed])[-1]
        return (
            f"; about {_plural(needed, 'seed')} per variant would decide it, beyond the "
            f"design's max of {most}, which would have to rise"
        )
    return f"; about {_plural(needed, 'seed')} per variant would decide it"


def _pair_sentence(report: Report, p: Mapping[str, Any]) -> str:
    m = report["primary_metric"]
    a, b, conclusion = p["a"], p["b"], p["conclusion"]
    looks = (report.get("design") or {}).get("looks") or {}
    ns = f"{_seeds([p['n_a'], p['n_b']])}"
    if conclusion in ("a_better", "b_better"):
        return _better_sentence(report, p, ns)
    if conclusion == "equivalent":
        return _equivalent_sentence(report, p, ns)
    diff_text = f"{a} - {b} = {fmt.gap(p['diff'], m, signed=True, unit=m != 'test_loss')}"
    if conclusion == "untested":
        few = [x for x, n in ((a, p["n_a"]), (b, p["n_b"])) if n < MIN_SEEDS]
        who = _join([f"{x} has {_plural(_variant(report, x)['n'], 'seed')}" for x in few])
        so_far = ""
        if p["diff"] is not None:
            so_far = f"; so far {_levels(report, a, b)} {_label(report)}"
        return f"{a} vs {b} is untested: {who}, fewer than {MIN_SEEDS}{so_far}"
    if not looks.get("complete", True):
        return (
            f"{a} vs {b}: no conclusion until this look's trials end; so far {diff_text} with {ns}"
        )
    if p["p_value"] is None or p.get("exact_test"):
        why = "no difference at all" if p["p_value"] is None else _p_clause(report, p)
        return (
            f"{a} vs {b} is inconclusive: {diff_text} on every one of {ns}, with no spread "
            f"across seeds, so no t-test is possible ({why}; too few seeds for an exact test "
            f"to decide){_needed(report, p)}"
        )
    mde = fmt.gap(p["mde"], m, unit=m != "test_loss")
    return (
        f"{a} vs {b} is inconclusive with {ns}: {diff_text} ({_ci_name(report)} "
        f"{fmt.gap_interval(p['ci95'], m)}, {_p_clause(report, p)}; minimum "
        f"detectable difference {mde}){_needed(report, p)}"
    )


def _alone(report: Report) -> str:
    m = report["primary_metric"]
    data = [v for v in report["variants"] if v["n"]]
    v = data[0]
    spread = f"95% CI {fmt.level_interval(v['ci95'], m)}, " if v["ci95"] else ""
    alone = "there is no other variant to compare it with"
    if len(report["variants"]) > 1:
        alone = "no other variant has a finished trial to compare it with"
    return (
        f"{v['name']} reaches {fmt.level(v['mean'], m)} {_label(report)} "
        f"({spread}{_plural(v['n'], 'seed')}); {alone}"
    )


def _interim_prefix(report: Report) -> str:
    variants = report["variants"]
    done = sum(v["n"] for v in variants)
    lost = sum(v["n_failed"] + v["n_cancelled"] + len(v["seeds_without_metric"]) for v in variants)
    running = sum(v["n_running"] for v in variants)
    looks = (report.get("design") or {}).get("looks") or {}
    look = ""
    if looks.get("planned", 1) > 1:
        look = f"look {looks['current']} of {looks['planned']}, "
    return f"Interim result ({look}{done} of {done + lost + running} trials finished): "


def verdict_sentence(report: Report, *, differences: bool = True) -> str:
    """The report's verdict: one plain sentence per tested pair, then divergences, then
    (unless ``differences`` is False: the score's answer alone) each difference's sentence."""
    variants = report["variants"]
    done = sum(v["n"] for v in variants)
    lost = sum(v["n_failed"] + v["n_cancelled"] + len(v["seeds_without_metric"]) for v in variants)
    if done == 0:
        if not report["final"] and lost == 0:
            return "No trial has finished yet."
        if not report["final"]:
            return f"No trial has succeeded yet ({lost} failed or cancelled so far)."
        return f"No trial succeeded ({lost} failed or cancelled), so there is nothing to compare."
    if sum(1 for v in variants if v["n"]) == 1:
        sentences = [_alone(report)]
    else:
        sentences = [_pair_sentence(report, p) for p in report["pairwise"]]
    for v in variants:
        if v.get("n_diverged"):
            total = v["n"] + v["n_failed"] + len(v["seeds_without_metric"])
            sentences.append(
                f"{v['name']} diverged (loss not finite) on {v['n_diverged']} of "
                f"{_plural(total, 'trial')}, scored as they ended"
            )
    for d in report.get("differences") or () if differences else ():
        if d.get("sentence"):
            sentences.append(str(d["sentence"]).rstrip("."))
    text = ". ".join(sentences) + "."
    if not report["final"]:
        text = _interim_prefix(report) + text
    return text


# --- tables -----------------------------------------------------------------------------

_DASH = fmt.DASH

CONCLUSION_WORDS = {
    "a_better": "A better",
    "b_better": "B better",
    "equivalent": "equivalent",
    "inconclusive": "inconclusive",
    "untested": "untested",
}


def _mean_cell(m: str, v: Mapping[str, Any]) -> str:
    mean = fmt.level(v["mean"], m)
    if v["std"] is not None:
        mean += f" ± {fmt.gap(v['std'], m)}"
    return mean


def _spread_cell(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None:
        return _DASH
    return f"{mean:,.{digits}f}" + ("" if std is None else f" ± {std:,.{digits}f}")


def _variant_table(report: Report) -> tuple[list[str], list[list[str]]]:
    m = report["primary_metric"]
    headers = ["rank", "tier", "variant", "params", "FLOPs", "n", f"{_label(report)} mean ± std"]
    headers += ["95% CI", "failed", "diverged", "running", "s/epoch ± std", "ms/sample ± std"]
    by_name = {v["name"]: v for v in report["variants"]}
    rows: list[list[str]] = []
    for name in report["ranking"]:
        v = by_name[name]
        rows.append(
            [
                _DASH if v["rank"] is None else str(v["rank"]),
                _DASH if v.get("tier") is None else str(v["tier"]),
                name,
                fmt.count(v["params"]),
                fmt.count(v["flops"]),
                fmt.count(v["n"]),
                _mean_cell(m, v),
                fmt.level_interval(v["ci95"], m),
                fmt.count(v["n_failed"]),
                fmt.count(v.get("n_diverged", 0)),
                fmt.count(v["n_running"]),
                _spread_cell(v["seconds_per_epoch_mean"], v.get("seconds_per_epoch_std")),
                _spread_cell(
                    v["inference_ms_per_sample_mean"], v.get("inference_ms_per_sample_std"), 3
                ),
            ]
        )
    return headers, rows


def _pairwise_table(report: Report) -> tuple[list[str], list[list[str]]]:
    m = report["primary_metric"]
    headers = ["A", "B", "test", "A - B", "95% CI", "adjusted CI", "p (Holm)", "Hedges' g"]
    headers += ["TOST p (Holm)", "MDE", "conclusion", "seeds needed"]
    rows: list[list[str]] = []
    for p in report["pairwise"]:
        g = fmt.effect(p["effect_size"])
        if p.get("effect_size_ci95"):
            g += (
                f" [{fmt.effect(p['effect_size_ci95'][0])}, {fmt.effect(p['effect_size_ci95'][1])}]"
            )
        rows.append(
            [
                p["a"],
                p["b"],
                {"paired_t": "paired t", "welch": "Welch"}.get(p.get("test") or "", _DASH),
                fmt.gap(p["diff"], m, signed=True),
                fmt.gap_interval(p["ci95"], m),
                fmt.gap_interval(p.get("ci95_adjusted"), m),
                fmt.p_value(p["p_adjusted"]),
                g,
                fmt.p_value(p.get("equivalence_p_adjusted")),
                fmt.gap(p.get("mde"), m),
                CONCLUSION_WORDS.get(p.get("conclusion") or "", _DASH),
                fmt.count(p.get("seeds_needed")),
            ]
        )
    return headers, rows


def render_markdown(report: Report, *, title: str) -> str:
    """A short Markdown report: title, verdict, design, variant and pairwise tables, notes."""
    direction = "higher" if report["higher_is_better"] else "lower"
    state = "final" if report["final"] else "interim, trials still running or more to come"
    design = report.get("design") or {}
    heading = md_escape(without_terminal_codes(title))  # no ESC, BEL: as stored errors
    lines = [f"# {heading}", "", f"**Verdict:** {md_escape(report['verdict'])}", ""]
    labels = (
        ("score", "Score"),
        ("predictions", "Predictions"),
        ("representations", "Representations"),
    )
    given = [
        (label, text) for key, label in labels if (text := (report.get("answers") or {}).get(key))
    ]
    if len(given) > 1:  # the score alone is the verdict already
        lines += [f"- **{label}:** {md_escape(text)}" for label, text in given]
        lines += [""]
    lines += [f"Primary metric: {_label(report)} ({direction} is better); report {state}.", ""]
    lines += [md_escape(_design_line(report, design)), ""]
    lines += ["## Variants", "", *_md_table(*_variant_table(report)), ""]
    if report["pairwise"]:
        lines += ["## Pairwise comparisons", ""]
        lines += [md_escape(_pairwise_caption(design)), ""]
        lines += [*_md_table(*_pairwise_table(report)), ""]
    if report.get("differences"):  # core.report.differences
        lines += ["## Do they differ?", ""]
        lines += [
            f"- {md_escape(d['sentence'])}" for d in report["differences"] if d.get("sentence")
        ]
        lines += ["", *_md_table(*differences_table(report["differences"])), ""]
    lines += tuning_markdown(report.get("tuning"))
    lines += robustness_lines(report.get("robustness"), md_escape)
    shown = set((report.get("tuning") or {}).get("notes") or ())  # under Tuning already
    if notes := [n for n in report["notes"] if n not in shown]:
        lines += ["## Notes", "", *(f"- {md_escape(note)}" for note in notes), ""]
    lines += _structure_lines(report.get("structure") or [])
    return "\n".join(lines)


def _structure_lines(structure: Sequence[Mapping[str, Any]]) -> list[str]:
    """ "How they differ": each tested pair's structural differences, one bullet each."""
    rows = [s for s in structure if s.get("differences")]
    if not rows:
        return []
    lines = ["## How they differ", ""]
    for s in rows:
        lines.append(f"- **{md_escape(s['a'])} vs {md_escape(s['b'])}:**")
        lines += [f"  - {md_escape(d['text'])}" for d in s["differences"]]
    return [*lines, ""]


def _design_line(report: Report, design: Mapping[str, Any]) -> str:
    m = report["primary_metric"]
    looks = design.get("looks") or {}
    split = {"per_seed": "a split per seed", "fixed": "one fixed split"}.get(
        design.get("split") or "", str(design.get("split"))
    )
    seq = "one look; 95% t-intervals"
    if design.get("sequential"):
        kind = {"pocock": "Pocock", "obrien_fleming": "O'Brien-Fleming"}.get(
            looks.get("boundary") or "", str(looks.get("boundary"))
        )
        seq = (
            f"look {looks.get('current')} of {looks.get('planned')} "
            f"({kind} group-sequential boundaries from the joint normal distribution of the "
            "looks; a decided pair stays decided; 95% repeated confidence intervals, valid "
            "whatever the stopping)"
        )
    base = f"baseline {design['baseline']}" if design.get("baseline") else "all pairs"
    margin = design.get("equivalence_margin")
    return (
        f"Design: {split}; {base}; {seq}; alpha {design.get('alpha', 0.05)}; "
        f"equivalence margin ±{fmt.gap(margin, m, unit=True)}."
    )


def _pairwise_caption(design: Mapping[str, Any]) -> str:
    ci = "95% CI unadjusted, adjusted CI Bonferroni over the family"
    if design.get("sequential"):
        ci = (
            "95% CI repeated (valid whatever the stopping), adjusted CI repeated at the "
            "look's boundary for alpha over the family"
        )
    return (
        "Paired t-test over the seeds both sides have (3 or more), Welch's otherwise (an "
        "exact sign or Mann-Whitney test when there is no spread); p-values and TOST "
        f"p-values Holm-adjusted across the tested family; {ci}; Hedges' g (paired: g_z, "
        "the SD of the per-seed differences) with its interval of the same kind; MDE at 80% "
        "power."
    )


def _fixed_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    left = {1} if headers and headers[0] == "rank" else {0, 1}

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(wd) if i in left else c.rjust(wd)
            for i, (c, wd) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("-" * wd for wd in widths), *(line(r) for r in rows)]


def render_text(report: Report) -> str:
    """A fixed-width table for terminals, with the verdict and notes under it."""
    lines = _fixed_table(*_variant_table(report))
    if report["pairwise"]:
        lines += ["", *_fixed_table(*_pairwise_table(report))]
    lines += ["", report["verdict"]]
    lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def rows_to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with one header row; a None or missing value is an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue()
