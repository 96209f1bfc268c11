"""The readers of a comparison's trials with replicates (SQLite): the scores and the rounds'
decision read each variant's trial at each seed, never its replicates; the differences use
the replicates as their control."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from core.config import Settings
from core.report.load import load_report
from core.report.similarity import encode_predictions
from core.spec import ComparisonSpec
from core.store.tables import Comparison
from core.trials.planning import build_trials
from core.trials.rounds import decision_trials
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp


def test_the_scores_and_the_decision_leave_the_replicates_out(session: Session) -> None:
    body = {
        "name": "replicates",
        "dataset": {"name": "mnist_5k", "max_samples": 300},
        "training": {"epochs": 1},
        "seeds": {"min": 3, "max": 6, "step": 3},
        "analysis": {"probe_size": 16, "replicates": 1},
        "variants": [small_mlp("a"), small_mlp("b")],
    }
    validated = validate_comparison(ComparisonSpec.model_validate(body), Settings())
    assert validated.trials_total == 2 * 3 * 2
    comparison = Comparison(
        tenant="t",
        name="replicates",
        status="succeeded",
        spec=validated.spec,
        analyses=validated.analyses,
        trials_total=validated.trials_total,
    )
    session.add(comparison)
    session.flush()
    trials = build_trials(comparison.id, validated.spec, validated.analyses, [0, 1, 2])
    assert [(t.seed, t.replicate, t.variant) for t in trials[:4]] == [
        (0, 0, "a"),
        (0, 0, "b"),
        (0, 1, "a"),
        (0, 1, "b"),
    ]
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 100)
    scores: dict[str, list[float]] = {}
    for t in trials:
        t.status = "succeeded"
        # A replicate scored as a trial would move its variant's mean a long way.
        t.test_accuracy = 0.1 if t.replicate else 0.9 + 0.01 * t.seed + 0.02 * t.variant_index
        t.test_loss = 1 - t.test_accuracy
        t.best_val_accuracy = t.test_accuracy
        t.epochs_done = 1
        if not t.replicate:
            scores.setdefault(t.variant, []).append(t.test_accuracy)
    session.add_all(trials)
    session.flush()
    for t in trials:
        session.add(
            encode_predictions(t.id, np.arange(100), labels, rng.dirichlet(np.ones(10), 100))
        )
    session.commit()
    assert [(r.variant, r.seed) for r in decision_trials(session, comparison)] == [
        (v, s) for v in "ab" for s in (0, 1, 2)
    ]
    report, results = load_report(session, comparison)
    assert len(results) == 6
    for v in report["variants"]:
        assert v["n"] == 3
        assert v["mean"] == np.mean(scores[v["name"]])
    [d] = report["differences"]
    assert d["control"] == "replicates"
    assert d["control_seeds"] == [0, 1, 2]
    # The round: 12 trials are 3 seeds of 2 variants with one replicate each, round 1 of 2.
    assert comparison.spec.round_progress(comparison.trials_total) == (1, 2)
