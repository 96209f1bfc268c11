"""The report's tuning section: each variant at its best, and whether the budget was enough.

A pure function of the tuning block (``TuningSpec``) and each variant's stored tuning trials
(``Observation``): per variant, the configuration with the best validation score (the first
of equal ones) and that score; an edge note for each selected knob that lies within 5% of an
end of its continuous range (on a log scale for a log-uniform knob: ``core.tuning.budget
.on_edge``) or at an end of an ordered choice of at least three numbers, since the best may
lie past it (the space was too narrow); the budget curve, Dodge et al.'s expected best
validation score after n = 1..N completed trials with its spread (``expected_best``); and a
note when the last doubling of the budget still gained more than the equivalence margin
(``still_rising``: the budget was not enough to call the comparison fair). The curve and the
selection read the completed trials only (a pruned trial has no final score). One sentence
for the verdict says the comparison was made at tuned settings with equal budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from core.report import format as fmt
from core.report.markdown import md_escape, md_table
from core.report.schema import BudgetPointOut, EdgeNote, Tuning, TuningVariant
from core.tuning.budget import BudgetPoint, expected_best, on_edge, still_rising
from core.tuning.search import Observation
from core.tuning_space import Choice, LogUniform, TuningSpec

__all__ = [
    "EDGE_SHARE",
    "SELECTION",
    "budget_curves",
    "completed",
    "edge_notes",
    "selected",
    "tuning_markdown",
    "tuning_section",
]

EDGE_SHARE = 0.05
"""A selected value within this share of its range's width of an end is on the edge."""

SELECTION = (
    "each variant's configuration is the one with the best validation score among its tuning "
    "trials, which train on the training split over their own seeds (distinct from the "
    "comparison's) and are never evaluated on the test split; only the final trials, at the "
    "selected configuration over the comparison's seeds, are tested"
)


def completed(observations: Sequence[Observation]) -> list[Observation]:
    """The tuning trials that completed with a finite score, in their order."""
    return [
        o
        for o in observations
        if o.state == "complete" and o.value is not None and math.isfinite(o.value)
    ]


def selected(spec: TuningSpec, observations: Sequence[Observation]) -> Observation | None:
    """The completed trial with the best score (the first of equal ones); None before any."""
    done = completed(observations)
    if not done:
        return None
    sign = 1.0 if spec.maximize else -1.0
    return max(done, key=lambda o: sign * float(o.value or 0.0))


def budget_curves(
    spec: TuningSpec, observations: Mapping[str, Sequence[Observation]]
) -> dict[str, list[BudgetPoint]]:
    """Each variant's expected best score after n = 1..N completed trials."""
    return {
        name: expected_best([float(o.value or 0.0) for o in completed(obs)], maximize=spec.maximize)
        for name, obs in observations.items()
    }


def _numbers(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _edge(spec: TuningSpec, knob: str, value: Any) -> tuple[str, str] | None:
    """(which end, the range in words) when ``value`` of ``knob`` is on the edge."""
    entry = spec.space.get(knob)
    if entry is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(entry, Choice):
        numbers = sorted(set(_numbers(entry.choice)))
        if len(numbers) < 3 or len(numbers) != len(entry.choice):
            return None  # unordered, or too short for an end to say anything
        if value not in (numbers[0], numbers[-1]):
            return None
        words = "[" + ", ".join(f"{x:g}" for x in numbers) + "]"
        return ("low" if value == numbers[0] else "high"), f"the choice {words}"
    low, high = entry.bounds
    log = isinstance(entry, LogUniform)
    if not on_edge(float(value), low, high, log=log, share=EDGE_SHARE):
        return None
    scale = (lambda x: math.log(x)) if log else (lambda x: x)
    nearer_low = scale(float(value)) - scale(low) <= scale(high) - scale(float(value))
    kind = "log-uniform" if log else "uniform"
    return ("low" if nearer_low else "high"), f"the {kind} range [{low:g}, {high:g}]"


def edge_notes(spec: TuningSpec, variant: str, params: Mapping[str, Any]) -> list[EdgeNote]:
    """A note per selected knob on the edge of its range."""
    notes: list[EdgeNote] = []
    for knob in spec.space:
        if knob not in params:
            continue
        found = _edge(spec, knob, params[knob])
        if found is None:
            continue
        end, where = found
        value = params[knob]
        notes.append(
            EdgeNote(
                knob=knob,
                value=value,
                edge="low" if end == "low" else "high",
                text=f"{variant}: the selected {knob} ({value:g}) lies at the {end} end of "
                f"{where}: the space was too narrow, the best may lie beyond it; widen it there.",
            )
        )
    return notes


def _metric_words(spec: TuningSpec) -> tuple[str, str]:
    """The tuning metric in words, and the report metric whose format it takes."""
    if spec.metric == "val_loss":
        return "validation loss", "test_loss"
    return "validation accuracy", "test_accuracy"


def _variant(
    spec: TuningSpec, name: str, observations: Sequence[Observation], margin: float
) -> TuningVariant:
    words, as_metric = _metric_words(spec)
    best = selected(spec, observations)
    values = [float(o.value or 0.0) for o in completed(observations)]
    curve = expected_best(values, maximize=spec.maximize)
    rising = still_rising(curve, margin, maximize=spec.maximize)
    edges = edge_notes(spec, name, best.params) if best is not None else []
    notes = [e.text for e in edges]
    if rising:
        half = curve[max(0, len(curve) // 2 - 1)]
        gain = abs(curve[-1].mean - half.mean)
        notes.append(
            f"{name}: the expected best {words} was still rising at the budget (it gained "
            f"{fmt.gap(gain, as_metric, unit=True)} from {half.trials} to {curve[-1].trials} "
            f"trials, more than the equivalence margin of {fmt.gap(margin, as_metric)}): the "
            "budget was not enough to call the comparison fair; give more tuning trials."
        )
    return TuningVariant(
        name=name,
        trials=len(values),
        pruned=sum(1 for o in observations if o.state == "pruned"),
        failed=sum(1 for o in observations if o.state in ("failed", "complete")) - len(values),
        running=sum(1 for o in observations if o.state == "running"),
        selected=None if best is None else dict(best.params),
        validation_score=None if best is None else best.value,
        on_edge=edges,
        expected_best=[BudgetPointOut(trials=p.trials, mean=p.mean, std=p.std) for p in curve],
        still_rising=rising,
        notes=notes,
    )


def _verdict(spec: TuningSpec, variants: Sequence[TuningVariant]) -> str:
    words, _ = _metric_words(spec)
    sentence = (
        f"The comparison was made at tuned settings with equal budgets of "
        f"{spec.trials} tuning trial{'s' if spec.trials != 1 else ''} per variant "
        f"({spec.sampler} sampler), each variant at the configuration with the best {words}"
    )
    waiting = [v.name for v in variants if v.running]
    if waiting:
        sentence += f"; tuning is still running for {', '.join(waiting)}"
    short = [f"{v.name} {v.trials}" for v in variants if not v.running and v.trials < spec.trials]
    if short:
        sentence += (
            f"; fewer trials completed for some ({', '.join(short)} of {spec.trials}: "
            "pruned or failed)"
        )
    rising = [v.name for v in variants if v.still_rising]
    if rising:
        sentence += f"; the budget was not enough for {', '.join(rising)} (still rising)"
    return sentence + "."


def tuning_section(
    spec: TuningSpec,
    observations: Mapping[str, Sequence[Observation]],
    *,
    order: Sequence[str],
    margin: float,
) -> dict[str, Any]:
    """The report's ``tuning`` section (``core.report.schema.Tuning``'s JSON): per variant in
    ``order``, its selection, edge notes, budget curve and whether it still rose by more than
    ``margin`` (the comparison's equivalence margin) over the last doubling of the budget."""
    variants = [_variant(spec, name, observations.get(name, ()), margin) for name in order]
    section = Tuning(
        sampler=spec.sampler,
        metric=spec.metric,
        trials_per_variant=spec.trials,
        pruner=spec.pruner,
        epochs=spec.epochs,
        space={k: v.model_dump(mode="json") for k, v in spec.space.items()},
        selection=SELECTION,
        margin=margin,
        variants=variants,
        verdict=_verdict(spec, variants),
        notes=[note for v in variants for note in v.notes],
    )
    return section.model_dump(mode="json")


def _value(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def tuning_markdown(section: Mapping[str, Any] | None) -> list[str]:
    """The "Tuning" section of the Markdown report, its notes included (nothing without
    one); the report's Notes leave those out."""
    if not section:
        return []
    as_metric = "test_loss" if section["metric"] == "val_loss" else "test_accuracy"
    rows = []
    for v in section["variants"]:
        config = ", ".join(f"{k}={_value(x)}" for k, x in (v["selected"] or {}).items())
        last = v["expected_best"][-1] if v["expected_best"] else None
        rows.append(
            [
                v["name"],
                config or fmt.DASH,
                fmt.level(v["validation_score"], as_metric),
                f"{v['trials']} of {section['trials_per_variant']}",
                fmt.DASH
                if last is None
                else f"{fmt.level(last['mean'], as_metric)} ± "
                f"{fmt.gap(last['std'], as_metric, unit=True)}",
                "yes" if v["still_rising"] else "no",
            ]
        )
    headers = [
        "variant",
        "selected configuration",
        f"best {section['metric']}",
        "trials",
        "expected best at the budget (± SD)",
        "still rising",
    ]
    lines = ["## Tuning", "", md_escape(section["verdict"]), ""]
    lines += [md_escape(f"Selection: {section['selection']}."), ""]
    lines += [*md_table(headers, rows), ""]
    lines += [f"- {md_escape(note)}" for note in section["notes"]]
    return [*lines, ""] if section["notes"] else lines
