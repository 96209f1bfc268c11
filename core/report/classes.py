"""Which classes two variants differ on, by the rule that decides whether they differ at all.

A pair "differs" when A and B disagree more than two seeds of one model do
(``core.report.differences.beyond_seeds_p``, Holm-adjusted across the tested pairs, below
alpha: ``differs_beyond_seeds``). A class differs by the same test on its test examples alone
(the examples whose true label it is), Holm-adjusted across the pair's classes, below the same
alpha, and only in a pair that differs: the pair's test is the gate, so a class is never named
while the verdict says the pair is not shown to differ (or, in an interim report, makes no
claim). McNemar's per-class p-value (``p_adjusted``) stays a figure: it compares the trained
models of each seed, which differ by their luck alone, and decides nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from core.report.differences import TrialPredictions, beyond_seeds_p, differs_beyond_seeds
from core.report.stats import holm

__all__ = ["add_class_tests", "class_p_values"]


def _of_class(t: TrialPredictions, label: int) -> TrialPredictions:
    keep = t.labels == label
    return TrialPredictions(
        trial_id=t.trial_id,
        variant=t.variant,
        seed=t.seed,
        examples=t.examples[keep],
        labels=t.labels[keep],
        predicted=t.predicted[keep],
        p_true=t.p_true[keep],
        confidence=t.confidence[keep],
    )


def class_p_values(
    ta: Mapping[int, TrialPredictions], tb: Mapping[int, TrialPredictions], labels: Sequence[int]
) -> dict[int, float | None]:
    """label -> the beyond-seeds p-value on that class's test examples (None: untestable)."""
    return {
        label: beyond_seeds_p(
            {s: _of_class(t, label) for s, t in ta.items()},
            {s: _of_class(t, label) for s, t in tb.items()},
        )
        for label in labels
    }


def add_class_tests(
    differences: Sequence[dict[str, Any]],
    predictions: Sequence[TrialPredictions],
    *,
    alpha: float = 0.05,
) -> None:
    """Fill each pair's ``per_class`` rows with ``beyond_seeds_p``, its Holm adjustment
    across the pair's classes, and ``differs`` (gated by the pair's own ``differs``)."""
    by_variant: dict[str, dict[int, TrialPredictions]] = defaultdict(dict)
    for t in predictions:
        by_variant[t.variant][t.seed] = t
    for d in differences:
        rows = d.get("per_class") or []
        raw = class_p_values(
            by_variant.get(str(d["a"]), {}),
            by_variant.get(str(d["b"]), {}),
            [int(r["label"]) for r in rows],
        )
        tested = [label for label, p in raw.items() if p is not None]
        adjusted = dict(zip(tested, holm([raw[x] or 1.0 for x in tested]), strict=True))
        gate = d.get("differs")
        for r in rows:
            label = int(r["label"])
            r["beyond_seeds_p"] = raw.get(label)
            r["beyond_seeds_p_adjusted"] = adjusted.get(label)
            own = differs_beyond_seeds(adjusted.get(label), alpha)
            r["differs"] = None if gate is None or own is None else bool(gate and own)
