"""The tested family of a report and its conclusions: which pairs, which test, which level.

``core.report.build.build_report`` aggregates the trials; this module decides. It reads the
design from the spec (``dataset.split``, ``seeds`` as a list or ``{min, max, step}``,
``baseline``, ``equivalence_margin``; defaults when absent), works out the current look and
its level (Lan-DeMets, Pocock-type spending), tests each pair of the family (paired t or
Welch, TOST, Hedges' g, MDE; ``core.report.stats``), concludes each pair after Holm over the whole
planned family, and ranks and tiers the variants. ``core.report.build``'s docstring lists the
rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.report import stats as st
from core.report.stats import MIN_SEEDS, look_levels, pocock_spending
from core.spec import DEFAULT_MARGIN, DesignSpec, SeedSchedule

__all__ = [
    "ALPHA",
    "SEQUENTIAL_METHOD",
    "Plan",
    "Sample",
    "as_interval",
    "conclude",
    "current_look",
    "finite",
    "moments",
    "needs_more_seeds",
    "pair_row",
    "plan_of",
    "rank_and_tier",
    "tested_pairs",
]

ALPHA = 0.05
"""Family-wise significance level, applied to Holm-adjusted p-values."""

"""``equivalence_margin`` when the spec has none: one point of accuracy."""

SEQUENTIAL_METHOD = "lan_demets_pocock"
"""``design.sequential`` of an adaptive design: Lan-DeMets spending, Pocock-type function."""

_REL_TOL = 1e-12


class Sample(Protocol):
    """One variant's primary-metric values, by seed (``core.report.build``'s group of trials)."""

    name: str
    values: list[float]
    seeds: list[int]


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


def tested_pairs(names: Sequence[str], baseline: str | None) -> list[tuple[str, str]]:
    """The tested family: every other variant against ``baseline`` (baseline first in each
    pair), or every pair in submission order when there is no baseline (or it is unknown)."""
    names = list(dict.fromkeys(names))
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
    if isinstance(seeds, SeedSchedule):
        lo, step = seeds.min, seeds.step
        hi = max(lo, seeds.max)
        schedule = [lo + k * step for k in range(math.ceil((hi - lo) / step))] + [hi]
    elif seeds is not None:
        n_seeds = len(seeds)
    return Plan(design.split, baseline, margin, schedule, n_seeds)


def current_look(plan: Plan, planned: int, complete: bool) -> dict[str, Any]:
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


def _by_seed(g: Sample) -> dict[int, float]:
    return dict(zip(g.seeds, g.values, strict=True))


def _correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 3 or st.constant(a) or st.constant(b):
        return None
    return finite(float(np.corrcoef(a, b)[0, 1]))


def pair_row(
    ga: Sample, gb: Sample, *, family: int, level: float, final_level: float, margin: float
) -> dict[str, Any]:
    """One pair of the family with its test, intervals, effect size, TOST p and MDE."""
    na, nb = len(ga.values), len(gb.values)
    row: dict[str, Any] = {
        "a": ga.name,
        "b": gb.name,
        "n_a": na,
        "n_b": nb,
        "test": None,
        "paired": False,
        "n_paired": None,
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
        row["diff"] = finite(moments(ga.values)[0] - moments(gb.values)[0])
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
    ga: Sample,
    gb: Sample,
    family: int,
    level: float,
    final_level: float,
    margin: float,
) -> dict[str, Any]:
    na, nb = len(ga.values), len(gb.values)
    sa, sb = _by_seed(ga), _by_seed(gb)
    # Paired over the seeds both have: a seed gives both variants the same split, the same
    # data order and the same initial draws, and pairing removes that shared variance. A seed
    # only one of them has (the other's trial failed, or it ran other seeds) is left out of
    # the paired test; with fewer than MIN_SEEDS shared, Welch over all of each.
    common = sorted(set(sa) & set(sb))
    paired = len(common) >= MIN_SEEDS
    adjusted_level = 1.0 - level / family
    if paired:
        seeds = common
        na = nb = len(seeds)
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
        n_paired=na if paired else None,
        diff=finite(t.diff),
        ci95=as_interval(t.ci95),
        ci95_adjusted=as_interval(t.ci_adjusted),
        df=finite(t.df),
        p_value=finite(t.p),
        effect_size=None if g is None else finite(g[0]),
        effect_size_ci95=None if g is None else as_interval(g[1]),
        equivalence_p=st.tost(a, b, margin, paired=paired),
        mde=st.mde(sd, na, nb, level / family, paired=paired),
        level=level,
        _sd=sd,
        _final_level=final_level / family,
    )
    return row


def conclude(
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
            try:
                r["seeds_needed"] = st.seeds_needed(
                    diff, sd, margin, final_level, paired=r["paired"]
                )
            except (ArithmeticError, ValueError):  # spreads beyond float range: no estimate
                r["seeds_needed"] = None


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
