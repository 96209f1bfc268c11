"""core.trials.rounds' decision under the comparison's row lock: it reads the trials' primary
metric only, and concludes what the full report (curves and prediction differences loaded)
concludes, on a real SQLite database built from the tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.config import Settings
from core.report.build import build_report, needs_more_seeds
from core.report.load import load_report
from core.report.similarity import encode_predictions
from core.spec import ComparisonSpec
from core.store.tables import Comparison, EpochMetric
from core.trials.planning import build_trials
from core.trials.rounds import decision_trials, needs_more
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp


def _ended_round(
    s: Session, gap: float, metric: str = "test_accuracy", boundary: str = "obrien_fleming"
) -> Comparison:
    """An adaptive comparison whose first round (3 seeds of 3 variants) has ended, with the
    learning curves and predictions a worker stores; the variants' accuracies ``gap`` apart."""
    body = {
        "name": "decide",
        "dataset": {"name": "mnist_5k", "max_samples": 300},
        "training": {"epochs": 3},
        "seeds": {"min": 3, "max": 9, "step": 3, "boundary": boundary},
        "primary_metric": metric,
        "variants": [small_cnn("a"), small_mlp("b"), small_mlp("c")],
    }
    validated = validate_comparison(ComparisonSpec.model_validate(body), Settings())
    comparison = Comparison(
        tenant="t",
        name="decide",
        status="running",
        spec=validated.spec,
        analyses=validated.analyses,
    )
    s.add(comparison)
    s.flush()
    rng = np.random.default_rng(7)
    trials = build_trials(comparison.id, validated.spec, validated.analyses, [0, 1, 2])
    labels = rng.integers(0, 10, 200)
    for t in trials:
        t.status = "succeeded"
        t.test_accuracy = 0.9 + gap * t.variant_index + float(rng.normal(0, 0.01))
        t.test_loss = 1 - t.test_accuracy
        t.best_val_accuracy = t.test_accuracy
        t.epochs_done = 3
    s.add_all(trials)
    s.flush()
    for t in trials:
        for epoch in (1, 2, 3):
            s.add(EpochMetric(trial_id=t.id, epoch=epoch, values={"val_accuracy": 0.3 * epoch}))
        s.add(encode_predictions(t.id, np.arange(200), labels, rng.dirichlet(np.ones(10), 200)))
    s.commit()
    return comparison


def _decided(report: Any) -> tuple[Any, ...]:
    """What the decision reads of a report: the design's looks and each pair's conclusion."""
    pairs = [(p["a"], p["b"], p["test"], p["p_value"], p["conclusion"]) for p in report["pairwise"]]
    return report["design"]["looks"], tuple(pairs)


@pytest.mark.parametrize(
    ("gap", "metric"), [(0.0, "test_accuracy"), (0.05, "test_accuracy"), (0.2, "test_loss")]
)
def test_the_decision_concludes_what_the_full_report_concludes(
    session: Session, gap: float, metric: str
) -> None:
    comparison = _ended_round(session, gap, metric)
    full, _ = load_report(session, comparison)
    assert full["differences"]  # the full report did load the predictions
    light = build_report(
        comparison_id=comparison.id,
        primary_metric=metric,
        variant_order=comparison.spec.variant_names,
        trials=decision_trials(session, comparison),
        final=False,
        variant_info=comparison.analyses,
        design=comparison.spec.design,
    )
    assert _decided(light) == _decided(full)
    assert needs_more(session, comparison) is needs_more_seeds(full)


def test_close_variants_need_more_seeds_and_distant_ones_do_not(session: Session) -> None:
    # Pocock's boundary spends alpha evenly, so 3 seeds 20 points apart are decided at the
    # first look; O'Brien-Fleming's (the default) keeps most of it for the last looks.
    assert needs_more(session, _ended_round(session, 0.0, boundary="pocock")) is True
    assert needs_more(session, _ended_round(session, 0.2, boundary="pocock")) is False


def test_the_decision_reads_no_curve_and_no_prediction(session: Session) -> None:
    comparison = _ended_round(session, 0.0)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        needs_more(session, comparison)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements
    read = " ".join(statements)
    assert "epoch_metrics" not in read
    assert "trial_predictions" not in read
    assert "trial_layer_grams" not in read
