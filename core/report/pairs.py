"""The tested family of a report and its conclusions: which pairs, which test, which level.

``core.report.build.build_report`` aggregates the trials; this module decides. It reads the
design from the spec (``dataset.split``, ``seeds`` as a list or ``{min, max, step}``,
``baseline``, ``pairs``, ``equivalence_margin``; defaults when absent), tests each pair of
the family at the current look (paired t or Welch, TOST, Hedges' g, MDE;
``core.report.stats``) with the intervals the design calls for, writes each pair's
conclusion from the decisions of ``core.report.looks`` (Holm over the whole planned family,
with group-sequential boundaries in an adaptive design), and ranks and tiers the variants.
``core.report.build``'s docstring lists the rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.report import stats as st
from core.report.looks import ALPHA, Decision, Sample
from core.report.stats import MIN_SEEDS
from core.spec import DEFAULT_MARGIN, DesignSpec, SeedSchedule

__all__ = [
    "ALPHA",
    "PairLevels",
    "Plan",
    "Sample",
    "as_interval",
    "conclude",
    "finite",
    "moments",
    "needs_more_seeds",
    "pair_row",
    "plan_of",
    "rank_and_tier",
    "tested_pairs",
]

_REL_TOL = 1e-12


def finite(x: float | None) -> float | None:
    """``x`` as a float when finite, else None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def moments(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0.0 for one value or a constant sample)."""
    n = len(values)
    lo, hi = min(values), max(values)
    if hi - lo <= _REL_TOL * max(1.0, abs(lo), abs(hi)):
        return (lo if lo == hi else math.fsum(values) / n), 0.0
    # Divide by a power of two (exact) near the largest magnitude so squares cannot overflow.
    scale = math.ldexp(1.0, math.frexp(max(abs(lo), abs(hi)))[1] - 1)
    arr = np.asarray(values, dtype=float) / scale
    return scale * float(arr.mean()), scale * float(arr.std(ddof=1))


def as_interval(ci: tuple[float, float] | None) -> list[float] | None:
    """The interval as a JSON list, or None when it is missing or not finite."""
    return list(ci) if ci is not None and all(map(math.isfinite, ci)) else None


def tested_pairs(
    names: Sequence[str],
    baseline: str | None,
    contrasts: Sequence[tuple[str, str]] | None = None,  # noqa: PT028 (not a test)
) -> list[tuple[str, str]]:
    """The tested family: the named ``contrasts`` (the spec's ``pairs``, those whose two
    variants exist, first occurrence of each), else every other variant against
    ``baseline`` (baseline first in each pair), else every pair in submission order."""
    names = list(dict.fromkeys(names))
    if contrasts:
        known = set(names)
        chosen = [(a, b) for a, b in contrasts if a in known and b in known and a != b]
        seen: set[frozenset[str]] = set()
        unique = []
        for a, b in chosen:
            if frozenset((a, b)) not in seen:
                seen.add(frozenset((a, b)))
                unique.append((a, b))
        if unique:
            return unique
    if baseline is not None and baseline in names:
        return [(baseline, n) for n in names if n != baseline]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


@dataclass(frozen=True)
class Plan:
    """What the spec says about the design, with the documented defaults."""

    split: str
    baseline: str | None
    margin: float
    schedule: list[int] | None  # seeds per variant at each look (adaptive), or None (a list)
    n_seeds: int | None  # the list form's length
    boundary: str = "obrien_fleming"  # the adaptive design's group-sequential boundary
    contrasts: tuple[tuple[str, str], ...] | None = None  # the spec's named pairs


def plan_of(design: DesignSpec | None, names: Sequence[str]) -> Plan:
    """The plan of a comparison's design (``DesignSpec()`` when there is none): a baseline that
    names no variant is none, and a margin that is not a positive number the default."""
    design = design or DesignSpec()
    baseline = design.baseline if design.baseline in names else None
    margin = finite(design.equivalence_margin) or DEFAULT_MARGIN
    margin = margin if margin > 0 else DEFAULT_MARGIN
    seeds = design.seeds
    schedule: list[int] | None = None
    n_seeds: int | None = None
    boundary = "obrien_fleming"
    if isinstance(seeds, SeedSchedule):
        lo, step = seeds.min, seeds.step
        hi = max(lo, seeds.max)
        schedule = [lo + k * step for k in range(math.ceil((hi - lo) / step))] + [hi]
        boundary = seeds.boundary
    elif seeds is not None:
        n_seeds = len(seeds)
    named = getattr(design, "pairs", None)
    contrasts = tuple((str(a), str(b)) for a, b in named) if named else None
    return Plan(design.split, baseline, margin, schedule, n_seeds, boundary, contrasts)


# --- pairs --------------------------------------------------------------------------------


def _by_seed(g: Sample) -> dict[int, float]:
    return dict(zip(g.seeds, g.values, strict=True))


def _correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 3 or st.constant(a) or st.constant(b):
        return None
    return finite(float(np.corrcoef(a, b)[0, 1]))


@dataclass(frozen=True)
class PairLevels:
    """The levels a pair is tested and reported at (``core.report.build`` works them out)."""

    interval: float  # coverage of ci95 and effect_size_ci95: 0.95, or 1 - the look's level
    adjusted: float  # coverage of ci95_adjusted: the per-pair level over the family
    per_pair: float  # the per-pair level of the current look (the MDE's)
    final_per_pair: float  # the per-pair level of the last look (the seeds needed's)
    level: float  # the pair's reported level while undecided
    interval_method: str  # "t" or "repeated_<boundary>"


def pair_row(ga: Sample, gb: Sample, *, levels: PairLevels, margin: float) -> dict[str, Any]:
    """One pair of the family with its test, intervals, effect size, TOST p and MDE."""
    na, nb = len(ga.values), len(gb.values)
    row: dict[str, Any] = {
        "a": ga.name,
        "b": gb.name,
        "n_a": na,
        "n_b": nb,
        "test": None,
        "exact_test": None,
        "paired": False,
        "n_paired": None,
        "correlation": None,
        "diff": None,
        "ci95": None,
        "ci95_adjusted": None,
        "interval": None,
        "df": None,
        "p_value": None,
        "p_adjusted": None,
        "significant": False,
        "effect_size": None,
        "effect_size_ci95": None,
        "equivalence_p": None,
        "equivalence_p_adjusted": None,
        "equivalence_ci90": None,
        "conclusion": "untested",
        "practical": None,
        "decided_at_look": None,
        "decision_p": None,
        "mde": None,
        "seeds_needed": None,
        "seeds_needed_beyond_max": False,
        "level": None,
    }
    if na and nb:
        row["diff"] = finite(moments(ga.values)[0] - moments(gb.values)[0])
    if min(na, nb) < MIN_SEEDS or row["diff"] is None:
        return row
    try:
        with np.errstate(all="ignore"):
            return _tested_row(row, ga, gb, levels, margin)
    except (ArithmeticError, ValueError):
        # Values beyond float range (never accuracies or losses): no test, stays untested.
        return row


def _tested_row(
    row: dict[str, Any], ga: Sample, gb: Sample, levels: PairLevels, margin: float
) -> dict[str, Any]:
    na, nb = len(ga.values), len(gb.values)
    sa, sb = _by_seed(ga), _by_seed(gb)
    # Paired over the seeds both have: a seed gives both variants the same split, the same
    # data order and the same initial draws, and pairing removes that shared variance. A seed
    # only one of them has (the other's trial failed, or it ran other seeds) is left out of
    # the paired test; with fewer than MIN_SEEDS shared, Welch over all of each.
    common = sorted(set(sa) & set(sb))
    paired = len(common) >= MIN_SEEDS
    if paired:
        seeds = common
        na = nb = len(seeds)
        a, b = [sa[s] for s in seeds], [sb[s] for s in seeds]
        t = st.paired_t(a, b, levels.adjusted, levels.interval)
        g = st.hedges_g_paired(a, b, levels.interval)
        d = np.asarray(a) - np.asarray(b)
        sd = 0.0 if st.constant(list(d)) else float(d.std(ddof=1))
        row["correlation"] = _correlation(a, b)
    else:
        a, b = ga.values, gb.values
        t = st.welch_t(a, b, levels.adjusted, levels.interval)
        g = st.hedges_g_welch(a, b, levels.interval)
        va = 0.0 if st.constant(a) else float(np.var(a, ddof=1))
        vb = 0.0 if st.constant(b) else float(np.var(b, ddof=1))
        sd = math.sqrt((va + vb) / 2.0)
    p = st.pair_p(a, b, t, paired=paired)
    exact = None if t.p is not None else ("sign" if paired else "mann_whitney")
    row = dict(row)
    row.update(
        test="paired_t" if paired else "welch",
        exact_test=exact,
        paired=paired,
        n_paired=na if paired else None,
        diff=finite(t.diff),
        ci95=as_interval(t.ci95),
        ci95_adjusted=as_interval(t.ci_adjusted),
        interval=levels.interval_method,
        df=finite(t.df),
        p_value=finite(p),
        effect_size=None if g is None else finite(g[0]),
        effect_size_ci95=None if g is None else as_interval(g[1]),
        equivalence_p=st.pair_tost(a, b, margin, paired),
        equivalence_ci90=as_interval(st.tost_interval(t)),
        mde=st.mde(sd, na, nb, levels.per_pair, paired=paired),
        level=levels.level,
        _sd=sd,
    )
    return row


def conclude(
    rows: list[dict[str, Any]],
    decisions: Sequence[Decision],
    *,
    higher: bool,
    margin: float,
    complete: bool,
    levels: PairLevels,
    max_seeds: int | None,
) -> None:
    """Each pair's conclusion from its decision (``core.report.looks.decide``), the Holm-
    adjusted p-values of the current look, and the seeds that would decide an open pair."""
    sup = st.holm([1.0 if r["p_value"] is None else r["p_value"] for r in rows])
    eq = st.holm([1.0 if r["equivalence_p"] is None else r["equivalence_p"] for r in rows])
    for r, p_sup, p_eq, dec in zip(rows, sup, eq, decisions, strict=True):
        sd = r.pop("_sd", None)
        if r["test"] is None:
            continue
        r["p_adjusted"] = None if r["p_value"] is None else p_sup
        r["equivalence_p_adjusted"] = None if r["equivalence_p"] is None else p_eq
        diff = r["diff"]
        if dec.kind == "better" and dec.diff is not None:
            r["conclusion"] = "a_better" if (dec.diff > 0) == higher else "b_better"
        elif dec.kind == "equivalent":
            r["conclusion"] = "equivalent"
        else:
            r["conclusion"] = "inconclusive"  # or withheld while the look's trials run
        if dec.kind is not None:
            r["decided_at_look"] = (dec.look or 0) + 1
            r["decision_p"] = dec.p
            if levels.interval_method != "t":  # a list of seeds: level stays alpha
                r["level"] = dec.level
        r["significant"] = r["conclusion"] in ("a_better", "b_better")
        r["practical"] = practical(r, margin)
        if r["conclusion"] == "inconclusive" and complete and sd:
            try:
                needed = st.seeds_needed(
                    diff, sd, margin, levels.final_per_pair, paired=r["paired"]
                )
            except (ArithmeticError, ValueError):  # spreads beyond float range: no estimate
                needed = None
            r["seeds_needed"] = needed
            r["seeds_needed_beyond_max"] = bool(
                needed is not None and max_seeds is not None and needed > max_seeds
            )


def practical(row: Mapping[str, Any], margin: float) -> str | None:
    """A better pair's practical reading against the margin: ``beyond_margin`` when the
    interval of the gap lies wholly beyond it, ``within_margin`` when wholly inside it
    (better, but by a negligible amount), else ``undetermined``; None when not better."""
    if row["conclusion"] not in ("a_better", "b_better"):
        return None
    ci = row.get("ci95")
    if ci is None and row.get("exact_test") and row.get("diff") is not None:
        ci = [row["diff"], row["diff"]]  # no spread: the gap is the same on every seed
    if ci is None:
        return "undetermined"
    lo, hi = sorted(abs(x) for x in ci) if ci[0] * ci[1] > 0 else (0.0, max(map(abs, ci)))
    if lo > margin:
        return "beyond_margin"
    if hi < margin:
        return "within_margin"
    return "undetermined"


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


def rank_and_tier(
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
        # Best first, a variant joins unless a tested pair shows it apart from one already in
        # the tier (against a baseline, the leader may have no test against it).
        group = [remaining[0]]
        for v in remaining[1:]:
            if not any(
                (g["name"], v["name"]) in beaten or (v["name"], g["name"]) in beaten for g in group
            ):
                group.append(v)
        for v in group:
            v["tier"] = tier
        remaining = [v for v in remaining if v not in group]
        tier += 1
    return [v["name"] for v in ordered]


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
