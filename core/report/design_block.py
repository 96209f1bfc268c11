"""The report's ``design`` block: how the comparison was run and tested, as the report states
it (the split, the test the pairs used, the family and its corrections, the sequential looks,
the training settings, matched sizes and the tuning stage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.report.looks import ALPHA, Look, look_summary
from core.report.pairs import Plan
from core.spec import DesignSpec

__all__ = ["design_block"]


def design_block(
    design: DesignSpec | None,
    plan: Plan,
    look: Look,
    family: Sequence[tuple[str, str]],
    pairs: Sequence[Mapping[str, Any]],
    intervals: str,
    variant_intervals: str,
) -> dict[str, Any]:
    """The report's ``design``: the split, the test the pairs used, the family and its
    corrections, the sequential looks, the training settings, matched sizes and tuning."""
    tests = {p["test"] for p in pairs if p["test"] is not None}
    return {
        "split": plan.split,
        "paired": bool(tests) and tests == {"paired_t"},
        "test": tests.pop() if len(tests) == 1 else ("mixed" if tests else None),
        "alpha": ALPHA,
        "equivalence_margin": plan.margin,
        "baseline": plan.baseline,
        "pairs": None if plan.contrasts is None else [list(p) for p in family],
        "sequential": None if look.boundary is None else f"group_sequential_{look.boundary}",
        "looks": look_summary(look, plan.n_seeds),
        "family_size": len(family),
        "multiplicity": "holm",
        "interval_adjustment": "bonferroni",
        "training": dict(design.training) if design is not None else {},
        "matched": (
            {k: m.model_dump(mode="json") for k, m in design.matched.items()} if design else {}
        ),
        "tuning": _tuning_design(design),
        "variant_intervals": variant_intervals,
        "intervals": intervals,
    }


def _tuning_design(design: DesignSpec | None) -> dict[str, Any] | None:
    """The tuning stage as the design block states it (None without one): the budget, the
    sampler, the metric and the knobs searched; the selection saw the validation split only."""
    if design is None or design.tuning is None:
        return None
    dumped = design.tuning.model_dump(mode="json", exclude={"space"})
    return {**dumped, "knobs": list(design.tuning.space), "selected_on": "validation"}
