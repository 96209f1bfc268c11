"""The looks of a design and the decisions taken at them.

A list of seeds is one look at the full alpha. An adaptive design (``seeds: {min, max,
step, boundary}``) has a look after each round, with group-sequential boundaries
(``core.report.sequential``). The report is a pure function of the trials, so it *replays*
the looks: look j's data are the first ``n_j`` seeds of each variant, and a pair decided at
look j keeps that decision at every later look, whatever the later seeds show (as
group-sequential practice has it: the trial for that question stopped). While the current
look's trials still run, only the looks before it decide.

``decide`` applies, for each look in turn, Holm's procedure with group-sequential
boundaries to the superiority p-values (``sequential.holm_sequential``), then Holm's
adjustment of the TOST p-values of the pairs still undecided against the look's level for
alpha. With one look both reduce to the fixed design's Holm at alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from core.report import stats as st
from core.report.sequential import crossing_probability, holm_sequential, t_levels, z_bounds
from core.report.stats import MIN_SEEDS

__all__ = ["ALPHA", "Decision", "Look", "Sample", "decide", "look_of", "look_summary"]

ALPHA = 0.05
"""Family-wise significance level."""


class Sample(Protocol):
    """One variant's primary-metric values, by seed (``core.report.build``'s group of trials)."""

    name: str
    values: list[float]
    seeds: list[int]


@dataclass(frozen=True)
class Look:
    """Where the design stands: the looks' seeds per variant, the current one, its state."""

    schedule: tuple[int, ...]  # seeds per variant at each look; one entry for a list of seeds
    index: int  # the current look, 0-based
    complete: bool  # every trial of the current look has ended
    boundary: str | None  # "pocock" / "obrien_fleming"; None for a list of seeds

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.schedule[-1] for n in self.schedule)

    def levels(self, alpha: float) -> tuple[float, ...]:
        """Each look's nominal level for a design at ``alpha``."""
        if self.boundary is None:
            return (alpha,)
        return t_levels(self.schedule, alpha, self.boundary)

    def level(self, alpha: float, look: int | None = None) -> float:
        return self.levels(alpha)[self.index if look is None else look]


def look_of(schedule: Sequence[int] | None, n_seeds: int, boundary: str, complete: bool) -> Look:
    """The look whose seeds per variant reach ``n_seeds`` (the seeds planned so far)."""
    if schedule is None:
        return Look((n_seeds,), 0, complete, None)
    k = next((i for i, n in enumerate(schedule) if n >= n_seeds), len(schedule) - 1)
    return Look(tuple(schedule), k, complete, boundary)


def look_summary(look: Look, planned_seeds: int | None) -> dict[str, Any]:
    """``design.looks`` of the report."""
    if look.boundary is None:
        return {
            "current": 1,
            "planned": 1,
            "complete": look.complete,
            "seeds_per_variant": [planned_seeds or look.schedule[0]],
            "level": ALPHA,
            "alpha_spent": ALPHA,
            "boundary": None,
            "levels": [ALPHA],
        }
    levels = look.levels(ALPHA)
    bounds = z_bounds(look.fractions, ALPHA, look.boundary)
    k = look.index
    return {
        "current": k + 1,
        "planned": len(look.schedule),
        "complete": look.complete,
        "seeds_per_variant": list(look.schedule),
        "level": levels[k],
        "alpha_spent": crossing_probability(bounds[: k + 1], look.fractions[: k + 1]),
        "final_level": levels[-1],
        "boundary": look.boundary,
        "levels": list(levels),
    }


Kind = Literal["better", "equivalent"]


@dataclass(frozen=True)
class Decision:
    """A pair's decision: what, at which look (0-based), with the look's difference and
    the level its p-value was compared with; ``kind`` None while undecided."""

    kind: Kind | None
    look: int | None
    diff: float | None
    level: float | None
    p: float | None = None  # the p-value (TOST p for equivalence) at the decision look


def _values(g: Sample, keep: set[int] | None) -> dict[int, float]:
    return {s: v for s, v in zip(g.seeds, g.values, strict=True) if keep is None or s in keep}


def look_test(
    ga: Sample, gb: Sample, keep: set[int] | None, margin: float
) -> tuple[float | None, float | None, float | None]:
    """The pair's (p, TOST p, diff) over the seeds in ``keep`` (all when None), by the
    report's rules: paired over at least ``MIN_SEEDS`` shared seeds, else Welch."""
    sa, sb = _values(ga, keep), _values(gb, keep)
    if min(len(sa), len(sb)) < MIN_SEEDS:
        return None, None, None
    common = sorted(set(sa) & set(sb))
    try:
        with np.errstate(all="ignore"):
            if len(common) >= MIN_SEEDS:
                a, b = [sa[s] for s in common], [sb[s] for s in common]
                return st.look_p_values(a, b, margin, paired=True)
            return st.look_p_values(list(sa.values()), list(sb.values()), margin, paired=False)
    except (ArithmeticError, ValueError):
        return None, None, None


def decide(
    pairs: Sequence[tuple[Sample, Sample]], look: Look, margin: float, alpha: float = ALPHA
) -> list[Decision]:
    """Each pair's decision, replaying the looks up to the current one (the one before it
    while its trials run)."""
    last = look.index if look.complete else look.index - 1
    m = len(pairs)
    if last < 0 or m == 0:
        return [Decision(None, None, None, None)] * m
    all_seeds = sorted({s for ga, gb in pairs for s in (*ga.seeds, *gb.seeds)})
    tests: list[list[tuple[float | None, float | None, float | None]]] = []
    for j in range(last + 1):
        keep = None if look.boundary is None else set(all_seeds[: look.schedule[j]])
        tests.append([look_test(ga, gb, keep, margin) for ga, gb in pairs])
    schedule = look.schedule if look.boundary is not None else (1,)
    kind = look.boundary or "pocock"
    rejected = holm_sequential([[t[0] for t in row] for row in tests], schedule, alpha, kind)
    out = [
        Decision(None, None, None, None)
        if r is None
        else Decision("better", r[0], tests[r[0]][i][2], r[1], tests[r[0]][i][0])
        for i, r in enumerate(rejected)
    ]
    settled = {i: r[0] for i, r in enumerate(rejected) if r is not None}
    for j in range(last + 1):
        eq = st.holm([1.0 if t[1] is None else t[1] for t in tests[j]])
        level = look.level(alpha, j)
        for i in range(m):
            if settled.get(i, j + 1) <= j or tests[j][i][1] is None or not eq[i] < level:
                continue
            settled[i] = j
            out[i] = Decision("equivalent", j, tests[j][i][2], level, eq[i])
    return out
