"""The report in words: its verdict and notes, and its Markdown, terminal and CSV forms.

Every function here reads only the JSON dict that ``core.report.build_report`` makes, so
the words can be regenerated from a stored report. Numbers are written the way a person
reads them: accuracy levels in percent, accuracy differences in percentage points, loss
values as plain numbers.

Verdict rules, in order:

1. No succeeded trial: "No trial has finished yet." (or why nothing can be compared).
2. One variant with data: its level and interval, and that nothing compares with it.
3. Fewer than two variants have ``MIN_SEEDS`` seeds: the leader's lead over the
   runner-up, and that the seeds are too few for a significance test.
4. Otherwise rules 5 and 6 over the variants with ``MIN_SEEDS`` seeds or more (the only
   ones tested), followed by the variants left untested with their level and seed count.
5. No pair significant: the variants are not distinguishable, with the leader's lead
   (two constant samples that differ: the lead on every seed, and that there is no test).
6. Otherwise: the leader's significant wins (with CI and Holm-adjusted p), then the
   variants it cannot be told from, then other significant pairs.

A partial report (``final`` false) gets a prefix that says how many trials finished.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MIN_SEEDS",
    "RATIO_LIMIT",
    "fairness_notes",
    "render_markdown",
    "render_text",
    "rows_to_csv",
    "verdict_sentence",
]

MIN_SEEDS = 3
"""A variant with fewer finished seeds than this is never tested: no p-value, no
significance, and the verdict says it was left out."""

RATIO_LIMIT = 2.0
"""Parameter or FLOP counts further apart than this factor get a fairness note."""

_LABELS = {
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "best_val_accuracy": "best validation accuracy",
}

Report = Mapping[str, Any]


@dataclass(frozen=True)
class _Words:
    """How to write the numbers of one report's primary metric."""

    metric: str
    higher: bool

    @property
    def accuracy(self) -> bool:
        return self.metric != "test_loss"

    @property
    def label(self) -> str:
        return _LABELS.get(self.metric, self.metric.replace("_", " "))

    def level(self, x: float) -> str:
        return f"{100 * x:.1f}%" if self.accuracy else f"{x:.4g}"

    def reaches(self, x: float) -> str:
        return f"{self.level(x)} {self.label}" if self.accuracy else f"a {self.label} of {x:.4g}"

    def gap(self, x: float) -> str:
        if not self.accuracy:
            return f"{x:.3g}"
        return f"{100 * x:.2f}" if abs(100 * x) < 0.1 else f"{100 * x:.1f}"

    def by(self, x: float, *, first: bool = True) -> str:
        if self.accuracy:
            return f"{self.gap(x)} points" + (f" of {self.label}" if first else "")
        return self.gap(x) + (f" in {self.label}" if first else "")


def _words(report: Report) -> _Words:
    return _Words(report["primary_metric"], bool(report["higher_is_better"]))


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _seeds(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return _plural(lo, "seed") if lo == hi else f"{lo} to {hi} seeds"


def _adjusted_p(p: float) -> str:
    if p < 0.001:
        return "adjusted p < 0.001"
    return f"adjusted p = {p:.2f}" if p >= 0.1 else f"adjusted p = {p:.3f}"


def _pair(report: Report, x: str, y: str) -> Mapping[str, Any]:
    return next(p for p in report["pairwise"] if {p["a"], p["b"]} == {x, y})


def _advantage(w: _Words, pair: Mapping[str, Any], leader: str) -> tuple[float, list[float] | None]:
    """The leader's advantage over the other side of a pair and its CI; positive = better."""
    sign = 1.0 if (pair["a"] == leader) == w.higher else -1.0
    ci = pair["ci95"]
    oriented = None if ci is None else sorted((sign * ci[0], sign * ci[1]))
    return sign * (pair["diff"] or 0.0), oriented


def _win(w: _Words, pair: Mapping[str, Any], leader: str, *, first: bool = True) -> str:
    other = pair["b"] if pair["a"] == leader else pair["a"]
    adv, ci = _advantage(w, pair, leader)
    if pair["p_adjusted"] is None or ci is None:
        return f"{other} by {w.by(adv, first=first)} (no spread across seeds, so no test)"
    interval = f"95% CI {w.gap(ci[0])} to {w.gap(ci[1])}"
    return f"{other} by {w.by(adv, first=first)} ({interval}, {_adjusted_p(pair['p_adjusted'])})"


def _join(parts: Sequence[str], word: str = "and") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _compared(report: Report, w: _Words) -> str:
    data = [v for v in report["variants"] if v["n"]]
    ns = [v["n"] for v in data]
    ranking = report["ranking"]
    leader = ranking[0]
    if len(data) == 1:
        v = data[0]
        ci = v["ci95"]
        spread = f"95% CI {w.level(ci[0])} to {w.level(ci[1])}, " if ci else ""
        alone = "there is no other variant to compare it with"
        if len(report["variants"]) > 1:
            alone = "no other variant has a finished trial to compare it with"
        return f"{leader} reaches {w.reaches(v['mean'])} ({spread}{_seeds(ns)}); {alone}"
    tested = [v for v in data if v["n"] >= MIN_SEEDS]
    if len(tested) < 2:
        runner_up = ranking[1]
        lead, _ = _advantage(w, _pair(report, leader, runner_up), leader)
        head = f"{leader} leads {runner_up} by {w.by(lead)}"
        if lead == 0.0:
            head = f"{leader} and {runner_up} both reach {w.reaches(data[0]['mean'])}"
        return (
            f"{head}, but there are too few seeds "
            f"({min(ns)}) for a significance test; run at least {MIN_SEEDS} seeds per variant "
            "to tell them apart"
        )
    names = {v["name"] for v in tested}
    sentence = _tested(report, w, tested, [n for n in ranking if n in names])
    few = [v for v in data if v["n"] < MIN_SEEDS]
    if few:
        listed = _join(
            [f"{v['name']} ({w.reaches(v['mean'])} over {_plural(v['n'], 'seed')})" for v in few]
        )
        verb = "is" if len(few) == 1 else "are"
        sentence += f"; {listed} {verb} not tested, with fewer than {MIN_SEEDS} seeds"
    return sentence


def _tested(report: Report, w: _Words, data: Sequence[Mapping[str, Any]], order: list[str]) -> str:
    """The verdict over the variants with enough seeds for a test, ``order`` best first."""
    ns = [v["n"] for v in data]
    leader, runner_up = order[0], order[1]
    top = _pair(report, leader, runner_up)
    lead, _ = _advantage(w, top, leader)
    if not any(p["significant"] for p in report["pairwise"]):
        if len(data) == 2 and top["p_value"] is None and lead != 0.0:
            return (
                f"{leader} leads {runner_up} by {w.by(lead)} on every one of "
                f"{_seeds(ns)} (no spread across seeds, so no test)"
            )
        if len(data) == 2:
            head = f"{leader} and {runner_up} are not distinguishable with {_seeds(ns)}"
        else:
            head = f"None of the {len(data)} variants is distinguishable from another"
            head += f" with {_seeds(ns)}"
        if lead == 0.0:
            both = w.reaches(data[0]["mean"])
            return f"{head}: {leader} and {runner_up} both reach {both}"
        return f"{head}: {leader} leads {_win(w, top, leader)}"
    others = order[1:]
    wins = [_pair(report, leader, o) for o in others if _pair(report, leader, o)["significant"]]
    ties = [o for o in others if not _pair(report, leader, o)["significant"]]
    clauses: list[str] = []
    if wins:
        clauses.append(
            f"{leader} beats "
            + _join([_win(w, p, leader, first=i == 0) for i, p in enumerate(wins)])
        )
    if ties:
        tie_seeds = _seeds([v["n"] for v in data if v["name"] in (leader, *ties)])
        if len(ties) == 1:
            clauses.append(f"{leader} and {ties[0]} are not distinguishable with {tie_seeds}")
        else:
            clauses.append(
                f"{leader} is not distinguishable from {_join(ties, 'or')} with {tie_seeds}"
            )
    for p in report["pairwise"]:
        if p["significant"] and leader not in (p["a"], p["b"]):
            winner = p["a"] if (p["diff"] > 0) == w.higher else p["b"]
            clauses.append(f"{winner} beats {_win(w, p, winner, first=not wins)}")
    return "; ".join(clauses)


def verdict_sentence(report: Report) -> str:
    """The report's verdict: one plain sentence a person can paste."""
    variants = report["variants"]
    done = sum(v["n"] for v in variants)
    lost = sum(v["n_failed"] + v["n_cancelled"] + len(v["seeds_without_metric"]) for v in variants)
    running = sum(v["n_running"] for v in variants)
    if done == 0:
        if not report["final"] and lost == 0:
            return "No trial has finished yet."
        if not report["final"]:
            return f"No trial has succeeded yet ({lost} failed or cancelled so far)."
        return f"No trial succeeded ({lost} failed or cancelled), so there is nothing to compare."
    sentence = _compared(report, _words(report))
    if not report["final"]:
        sentence = f"Partial result ({done} of {done + lost + running} trials finished): {sentence}"
    return sentence + "."


def _trial_notes(report: Report, w: _Words, v: Mapping[str, Any], anyone: bool) -> list[str]:
    notes: list[str] = []
    name, n = v["name"], v["n"]
    so_far = "" if report["final"] else " so far"
    if n == 0 and anyone:
        notes.append(f"{name} has no finished trial{so_far}, so it is not compared.")
    elif n == 1:
        notes.append(
            f"{name} has only 1 finished seed{so_far}: no confidence interval and no "
            f"significance test are possible; run at least {MIN_SEEDS}."
        )
    elif 1 < n < MIN_SEEDS:
        notes.append(
            f"{name} has only {n} finished seeds{so_far}: its confidence interval is wide "
            f"and no significance test is run against it; run at least {MIN_SEEDS}."
        )
    for key, noun, suffix in (
        ("failed_seeds", "failed trial", ""),
        ("cancelled_seeds", "cancelled trial", ""),
        ("seeds_without_metric", "succeeded trial", f" without a finite {w.label}"),
    ):
        if seeds := v[key]:
            listed = ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))
            counted = _plural(len(seeds), noun) + suffix
            notes.append(f"{name}: {counted} ({listed}) left out of the statistics.")
    stopped = v["stopped_early"]
    if sum(stopped.values()):
        how = [
            f"{k} by " + ("early stopping" if reason == "early_stopping" else "the time budget")
            for reason, k in stopped.items()
            if k
        ]
        notes.append(
            f"{name}: {sum(stopped.values())} of {n} trials stopped before their planned "
            f"epochs ({', '.join(how)}), so not every trial trained for the same budget."
        )
    return notes


def _ratio_notes(report: Report, w: _Words) -> list[str]:
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
                    f"({hi:,} vs {lo:,}): a difference in {w.label} may come from {source}, "
                    "not from the architecture's design."
                )
    return notes


def _pair_notes(report: Report, w: _Words) -> list[str]:
    notes: list[str] = []
    by_name = {v["name"]: v for v in report["variants"]}
    for p in report["pairwise"]:
        va, vb, diff = by_name[p["a"]], by_name[p["b"]], p["diff"]
        if diff is None or va["std"] is None or vb["std"] is None:
            continue
        spread = max(va["std"], vb["std"])
        if p["p_value"] is None and diff == 0.0:
            notes.append(
                f"{p['a']} and {p['b']} gave the same {w.label} ({w.level(va['mean'])}) on "
                "every seed: with no spread there is nothing to test."
            )
        elif p["p_value"] is None:
            notes.append(
                f"{p['a']} and {p['b']} each gave one {w.label} on every seed "
                f"({w.level(va['mean'])} vs {w.level(vb['mean'])}): with no spread no t-test "
                "is possible, so the pair is not marked significant although the values differ."
            )
        elif not p["significant"] and abs(diff) < spread:
            notes.append(
                f"The gap between {p['a']} and {p['b']} ({w.by(abs(diff))}) is smaller than "
                f"the seed-to-seed spread (std up to {w.by(spread, first=False)}): another set "
                "of seeds could rank them the other way."
            )
    return notes


def fairness_notes(report: Report) -> list[str]:
    """The report's notes: partial results, few seeds, lost trials, unequal budgets and sizes."""
    w = _words(report)
    variants = report["variants"]
    done = sum(v["n"] for v in variants)
    notes: list[str] = []
    if not report["final"]:
        running = sum(v["n_running"] for v in variants)
        notes.append(
            f"This report is partial: {_plural(done, 'trial')} finished and {running} still "
            "queued or running, so the numbers will change."
        )
    for v in variants:
        notes.extend(_trial_notes(report, w, v, anyone=done > 0))
    notes.extend(_ratio_notes(report, w))
    notes.extend(_pair_notes(report, w))
    return notes


# --- tables -----------------------------------------------------------------------------

_DASH = "—"


def _level_cell(w: _Words, x: float | None) -> str:
    if x is None:
        return _DASH
    return f"{100 * x:.2f}%" if w.accuracy else f"{x:.4f}"


def _spread_cell(w: _Words, x: float) -> str:
    return f"{100 * x:.2f}" if w.accuracy else f"{x:.4f}"


def _interval_cell(w: _Words, ci: Sequence[float] | None, *, signed: bool = False) -> str:
    if ci is None:
        return _DASH
    if w.accuracy:
        fmt = "{:+.2f}" if signed else "{:.2f}"
        return f"{fmt.format(100 * ci[0])} to {fmt.format(100 * ci[1])}" + (
            " pts" if signed else "%"
        )
    fmt = "{:+.4f}" if signed else "{:.4f}"
    return f"{fmt.format(ci[0])} to {fmt.format(ci[1])}"


def _count_cell(x: int | None) -> str:
    return _DASH if x is None else f"{x:,}"


def _float_cell(x: float | None, digits: int = 2) -> str:
    return _DASH if x is None else f"{x:.{digits}f}"


def _p_cell(p: float | None) -> str:
    if p is None:
        return _DASH
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _variant_table(report: Report) -> tuple[list[str], list[list[str]]]:
    w = _words(report)
    headers = ["rank", "variant", "params", "FLOPs", "n", f"{w.label} mean ± std", "95% CI"]
    headers += ["failed", "running", "s/epoch"]
    by_name = {v["name"]: v for v in report["variants"]}
    rows: list[list[str]] = []
    for name in report["ranking"]:
        v = by_name[name]
        mean = _level_cell(w, v["mean"])
        if v["std"] is not None:
            mean += f" ± {_spread_cell(w, v['std'])}"
        rows.append(
            [
                _DASH if v["rank"] is None else str(v["rank"]),
                name,
                _count_cell(v["params"]),
                _count_cell(v["flops"]),
                str(v["n"]),
                mean,
                _interval_cell(w, v["ci95"]),
                str(v["n_failed"]),
                str(v["n_running"]),
                _float_cell(v["seconds_per_epoch_mean"]),
            ]
        )
    return headers, rows


def _pairwise_table(report: Report) -> tuple[list[str], list[list[str]]]:
    w = _words(report)
    headers = ["A", "B", "A - B", "95% CI", "p", "p (Holm)", "Cohen's d", "significant"]
    rows: list[list[str]] = []
    for p in report["pairwise"]:
        diff = p["diff"]
        if diff is None:
            diff_cell = _DASH
        else:
            diff_cell = f"{100 * diff:+.2f} pts" if w.accuracy else f"{diff:+.4f}"
        rows.append(
            [
                p["a"],
                p["b"],
                diff_cell,
                _interval_cell(w, p["ci95"], signed=True),
                _p_cell(p["p_value"]),
                _p_cell(p["p_adjusted"]),
                _float_cell(p["effect_size"]),
                "yes" if p["significant"] else "no",
            ]
        )
    return headers, rows


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in headers) + "|")
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report, *, title: str) -> str:
    """A short Markdown report: title, verdict, variant and pairwise tables, notes."""
    w = _words(report)
    direction = "higher" if w.higher else "lower"
    state = "final" if report["final"] else "partial, trials still running"
    lines = [f"# {' '.join(title.split())}", "", f"**Verdict:** {report['verdict']}", ""]
    lines += [f"Primary metric: {w.label} ({direction} is better); report {state}.", ""]
    lines += ["## Variants", "", *_md_table(*_variant_table(report)), ""]
    if report["pairwise"]:
        lines += ["## Pairwise comparisons", ""]
        lines += ["Welch's t-test; p-values Holm-adjusted across pairs; Cohen's d.", ""]
        lines += [*_md_table(*_pairwise_table(report)), ""]
    if report["notes"]:
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines)


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
