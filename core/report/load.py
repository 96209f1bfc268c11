"""Load a comparison's stored rows and turn them into the report (a pure function of the rows)."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Float, column, func, select, true
from sqlalchemy.orm import Session, aliased

from core.report.build import EpochPoint, TrialResult, build_report, tested_pairs
from core.report.classes import add_class_tests
from core.report.differences import compute_differences
from core.report.robustness_section import CLEAN, robustness_section
from core.report.schema import PairDifference
from core.report.similarity import last_hidden_cka, load_predictions
from core.report.tuning import tuning_section
from core.report.tuning_rows import load_tuning_observations, tuning_spec_of
from core.spec import StoredSpec
from core.status import TERMINAL, TrialStage, TrialStatus
from core.store.tables import Comparison, EpochMetric, Trial, TrialCorruptionScore
from models.spec import Layer
from models.structure import structure

__all__ = [
    "ROBUSTNESS_COLUMNS",
    "add_stages",
    "add_tuning",
    "assemble_report",
    "load_differences",
    "load_report",
    "load_robustness",
    "load_trial_results",
    "reuse_note",
    "robustness_rows",
]

ROBUSTNESS_COLUMNS = [
    "trial_id",
    "variant",
    "seed",
    "corruption",
    "severity",
    "accuracy",
    "loss",
    "n",
]


def load_trial_results(session: Session, comparison_id: str) -> list[TrialResult]:
    """Every trial of a comparison with its learning curve, as the report's input; the
    replicates (``analysis.replicates``) are left out: they enter the differences only."""
    curves: dict[str, list[EpochPoint]] = defaultdict(list)
    # The database extracts the four numbers; parsing every row's JSON in Python would cost
    # more than the statistics (a 100 x 200 comparison has 20,000 rows).
    keys = ("val_accuracy", "val_loss", "accuracy", "loss")
    if session.get_bind().dialect.name == "postgresql":
        # Each row's JSON parsed once (json_to_record), not once per key.
        record = (
            func.json_to_record(EpochMetric.values)
            .table_valued(*(column(k, Float) for k in keys))
            .render_derived(name="v", with_types=True)
        )
        numbers = [record.c[k] for k in keys]
        source = select(EpochMetric.trial_id, EpochMetric.epoch, *numbers, EpochMetric.seconds)
        source = source.join(record, true())
    else:
        numbers = [EpochMetric.values[k].as_float() for k in keys]
        source = select(EpochMetric.trial_id, EpochMetric.epoch, *numbers, EpochMetric.seconds)
    rows = session.execute(
        source.join(Trial, Trial.id == EpochMetric.trial_id)
        .where(Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TEST)
        .order_by(EpochMetric.trial_id, EpochMetric.epoch)
        # Streamed (a server-side cursor on Postgres): only the curves stay in memory, not
        # every result row as well.
        .execution_options(yield_per=5000)
    )
    for trial_id, epoch, val_accuracy, val_loss, accuracy, loss, seconds in rows:
        curves[trial_id].append(
            EpochPoint(
                epoch=epoch,
                val_accuracy=val_accuracy,
                val_loss=val_loss,
                accuracy=accuracy,
                loss=loss,
                seconds=seconds,
            )
        )
    # A replicate (replicate >= 1) is the control of "do they differ" and of CKA, never a
    # score: the paired score tests see each variant once per seed.
    trials = session.scalars(
        select(Trial)
        .where(
            Trial.comparison_id == comparison_id,
            Trial.stage == TrialStage.TEST,
            Trial.replicate == 0,
        )
        .order_by(Trial.variant_index, Trial.seed)
    )
    return [
        TrialResult(
            variant=t.variant,
            seed=int(t.seed),
            status=t.status,
            params=t.params,
            flops=t.flops,
            test_accuracy=t.test_accuracy,
            test_loss=t.test_loss,
            best_val_accuracy=t.best_val_accuracy,
            train_seconds=t.train_seconds,
            epochs_done=t.epochs_done,
            epochs_planned=t.epochs_planned,
            stop_reason=t.stop_reason,
            inference_ms_per_sample=t.inference_ms_per_sample,
            curve=tuple(curves.get(t.id, ())),
        )
        for t in trials
    ]


def load_report(
    session: Session, comparison: Comparison
) -> tuple[dict[str, Any], list[TrialResult]]:
    """The report of a comparison (partial while it runs) and the trial results behind it,
    computed now from the rows (``core.report.stored`` serves it stored)."""
    trials = load_trial_results(session, comparison.id)
    differences = load_differences(session, comparison)
    report = assemble_report(comparison, trials, differences, reuse_note(session, comparison.id))
    add_stages(session, comparison, report)
    return report, trials


def assemble_report(
    comparison: Comparison,
    trials: Sequence[TrialResult],
    differences: Sequence[Mapping[str, Any]],
    reuse: str | None,
) -> dict[str, Any]:
    """The report from what was read: the trials, the pairs' differences and the reuse note
    (no database: a computation that holds no connection). ``add_stages`` then adds the
    robustness and tuning sections, which read their own rows."""
    report = build_report(
        comparison_id=comparison.id,
        primary_metric=comparison.spec.primary_metric,
        variant_order=comparison.spec.variant_names,
        trials=list(trials),
        final=comparison.status in TERMINAL,
        variant_info=comparison.analyses,
        design=comparison.spec.design,
        differences=[PairDifference.model_validate(d) for d in differences],
    )
    report["name"] = comparison.name
    report["status"] = comparison.status
    report["structure"] = pair_structures(comparison.spec, report["pairwise"])
    several = [s["note"] for s in report["structure"] if s["note"]]
    if reuse:
        several.append(reuse)
    report["notes"] = [*report["notes"], *several]
    return report


def add_stages(session: Session, comparison: Comparison, report: dict[str, Any]) -> None:
    """The robustness section (its sentences appended to the verdict and its answer) and the
    tuning section, each when the comparison asked for it."""
    robustness = load_robustness(session, comparison, report)
    if robustness is not None:
        report["robustness"] = robustness
        sentences = [p["sentence"] for p in robustness["pairs"]]
        report["verdict"] = " ".join([report["verdict"], *sentences])
        report["answers"] = {**report["answers"], "robustness": " ".join(sentences) or None}
    add_tuning(session, comparison, report)


def add_tuning(session: Session, comparison: Comparison, report: dict[str, Any]) -> None:
    """With a tuning stage: the report's ``tuning`` section, its sentence at the end of the
    verdict and its notes after the others (``core.report.tuning``)."""
    spec = tuning_spec_of(comparison.spec)
    if spec is None:
        return
    section = tuning_section(
        spec,
        load_tuning_observations(session, comparison.id, spec.metric),
        order=comparison.spec.variant_names,
        margin=comparison.spec.equivalence_margin,
    )
    report["tuning"] = section
    report["verdict"] = f"{report['verdict']} {section['verdict']}"
    report["notes"] = [*report["notes"], *section["notes"]]


def robustness_rows(session: Session, comparison_id: str) -> list[dict[str, Any]]:
    """What ``/robustness`` serves: per succeeded trial (its final stage, replicate 0), one
    ``clean`` row (severity 0: its test accuracy and loss) and one row per (corruption,
    severity) it was scored on, in the trials' order, then by corruption name and severity.
    Empty when no trial was scored under corruption."""
    trials = session.execute(
        select(Trial.id, Trial.variant, Trial.seed, Trial.test_accuracy, Trial.test_loss)
        .where(
            Trial.comparison_id == comparison_id,
            Trial.status == TrialStatus.SUCCEEDED,
            Trial.stage == TrialStage.TEST,
            Trial.replicate == 0,
            Trial.test_accuracy.is_not(None),
        )
        .order_by(Trial.variant_index, Trial.seed, Trial.id)
    ).all()
    scores: dict[str, list[TrialCorruptionScore]] = defaultdict(list)
    for row in session.scalars(
        select(TrialCorruptionScore)
        .join(Trial, Trial.id == TrialCorruptionScore.trial_id)
        .where(Trial.comparison_id == comparison_id)
    ):
        scores[row.trial_id].append(row)
    out: list[dict[str, Any]] = []
    for trial_id, variant, seed, accuracy, loss in trials:
        mine = scores.get(trial_id)
        if not mine:
            continue
        n = mine[0].n
        base = {"trial_id": trial_id, "variant": variant, "seed": int(seed)}
        out.append({**base, "corruption": CLEAN, "severity": 0, "accuracy": accuracy})
        out[-1] |= {"loss": loss, "n": n}
        for r in sorted(mine, key=lambda r: (r.corruption, r.severity)):
            out.append(
                {**base, "corruption": r.corruption, "severity": r.severity}
                | {"accuracy": r.accuracy, "loss": r.loss, "n": r.n}
            )
    return out


def load_robustness(
    session: Session, comparison: Comparison, report: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The report's ``robustness`` section (core.report.robustness_section) over the tested
    pairs of ``report``; None when the comparison asked for no robustness."""
    asked = comparison.spec.robustness
    if asked is None or not asked.corruptions or not asked.severities:
        return None
    names = comparison.spec.variant_names
    baseline = comparison.spec.baseline
    return robustness_section(
        robustness_rows(session, comparison.id),
        pairs=[(str(p["a"]), str(p["b"])) for p in report["pairwise"]],
        names=names,
        reference=baseline if baseline in names else names[0],
        corruptions=asked.corruptions,
        severities=asked.severities,
    )


def pair_structures(
    spec: StoredSpec, pairwise: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """How each tested pair's graphs differ (``models.structure``), in the pairs' order; a
    variant whose layers no longer parse is left out rather than failing the report."""
    layers: dict[str, list[Layer]] = {}
    for variant in spec.variants:
        with contextlib.suppress(Exception):
            layers[variant.name] = list(variant.parse().layers or [])
    out = []
    for pair in pairwise:
        a, b = str(pair["a"]), str(pair["b"])
        if a in layers and b in layers:
            found = structure(layers[a], layers[b], a, b)
            out.append({"a": a, "b": b, "differences": found["differences"], "note": found["note"]})
    return out


def reuse_note(session: Session, comparison_id: str) -> str | None:
    """Which earlier comparisons a comparison's reused trials come from, as a note; None when
    every trial was trained for it."""
    source = aliased(Trial)
    count = func.count(Trial.id)
    rows = session.execute(
        select(Comparison.id, Comparison.name, count)
        .select_from(Trial)
        .join(source, source.id == Trial.reused_from)
        .join(Comparison, Comparison.id == source.comparison_id)
        .where(Trial.comparison_id == comparison_id)
        .group_by(Comparison.id, Comparison.name)
        .order_by(count.desc(), Comparison.id)
    ).all()
    if not rows:
        return None
    total = sum(int(n) for _, _, n in rows)
    where = "; ".join(f"{int(n)} from '{name}' ({cid})" for cid, name, n in rows)
    return (
        f"{total} trial(s) reuse the result of an identical earlier trial (same architecture, "
        f"data, split, settings, seed and library versions) instead of training again: {where}."
    )


def _noun(dataset: str) -> str:
    if dataset in ("mnist", "mnist_5k", "digits"):
        return "test digits"
    if dataset in ("fashion_mnist", "cifar10"):
        return "test images"
    return "test examples"


def load_differences(session: Session, comparison: Comparison) -> list[dict[str, Any]]:
    """Prediction-level differences of each tested pair (core.report.differences), from the stored
    predictions and last-hidden-layer Grams; empty when no trial kept predictions."""
    predictions = load_predictions(session, comparison.id)
    if not predictions:
        return []
    pairs = tested_pairs(comparison.spec.variant_names, comparison.spec.baseline)
    out = compute_differences(
        predictions,
        pairs,
        cka_last_hidden=last_hidden_cka(session, comparison.id, pairs),
        noun=_noun(comparison.spec.dataset.name),
        interim=comparison.status not in TERMINAL,
    )
    add_class_tests(out, predictions)
    return out
