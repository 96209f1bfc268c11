"""One labelled answer per question the report asks of a pair of architectures.

``verdict`` stays the whole text; ``answers`` splits it by level, each part leading with its
conclusion in plain words and then its figures:

- ``score``: is one better on the primary metric? (the pairs' sentences and divergences);
- ``predictions``: do they get different examples wrong, more than two seeds of one model?
- ``representations``: do their last hidden layers represent the data alike (CKA)?

A level with nothing to say (no differences computed yet, no CKA) is None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.report.differences import control_phrase
from core.report.format import level, level_interval, p_value

__all__ = ["answers"]


def _pct(x: float) -> str:
    return level(x, "test_accuracy")


def _prediction(d: Mapping[str, Any]) -> str | None:
    rate, ci = d.get("disagreement"), d.get("disagreement_ci95")
    if rate is None or ci is None:
        return None
    a, b = d.get("a"), d.get("b")
    differs = d.get("differs")
    phrase = control_phrase(d)
    luck = "seed-to-seed luck" if d.get("control", "seeds") == "seeds" else f"what {phrase} do"
    lead = {
        True: f"{a} and {b} make different mistakes, more than {phrase} do",
        False: f"{a} and {b} are not shown to make different mistakes beyond {luck}",
        None: f"{a} and {b}: too few paired seeds to tell their mistakes apart from luck",
    }[differs if isinstance(differs, bool) else None]
    interval = f"95% CI {level_interval(ci, 'test_accuracy')}"
    if seeds := d.get("disagreement_ci95_seeds"):
        interval = (
            f"95% CI over seeds {level_interval(seeds, 'test_accuracy')}; over test examples "
            f"{level_interval(ci, 'test_accuracy')}"
        )
    figures = [f"they disagree on {_pct(rate)} of examples ({interval})"]
    within = [x for x in (d.get("within_a"), d.get("within_b")) if x is not None]
    if within:
        verb = " disagree" if d.get("control") == "replicates" else ""
        figures.append(f"{phrase}{verb} on {_pct(sum(within) / len(within))}")
    if (p := d.get("beyond_seeds_p_adjusted")) is not None:
        text = p_value(p)
        figures.append(f"adjusted p {text if text.startswith('<') else '= ' + text}")
    return f"{lead}: {'; '.join(figures)}"


def _representation(d: Mapping[str, Any]) -> str | None:
    c = d.get("cka_last_hidden")
    if c is None:
        return None
    a, b = d.get("a"), d.get("b")
    within = [
        x for x in (d.get("cka_last_hidden_within_a"), d.get("cka_last_hidden_within_b")) if x
    ]
    if not within:
        return f"{a} and {b}: their last hidden layers have CKA {c:.2f} (no seed baseline)"
    base = sum(within) / len(within)
    lead = "less alike than" if c < base else "as alike as"
    between = "initialisations" if d.get("control") == "replicates" else "seeds"
    ci = d.get("cka_last_hidden_ci95")
    interval = f" (95% CI over seeds {ci[0]:.2f} to {ci[1]:.2f})" if ci else ""
    return (
        f"{a} and {b} represent the data {lead} {control_phrase(d)}: last hidden layer "
        f"CKA {c:.2f}{interval}, against {base:.2f} between {between}"
    )


def _join(parts: Sequence[str | None]) -> str | None:
    kept = [p.rstrip(".") for p in parts if p]
    return ". ".join(kept) + "." if kept else None


def answers(report: Mapping[str, Any], score: str) -> dict[str, str | None]:
    """The labelled answers; ``score`` is the verdict's score part (``render``)."""
    differences = report.get("differences") or ()
    return {
        "score": score,
        "predictions": _join([_prediction(d) for d in differences]),
        "representations": _join([_representation(d) for d in differences]),
    }
