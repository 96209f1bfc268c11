"""A report shaped like the article's (conv128 against two and three conv64, baseline
conv128, five seeds, per-seed split) from synthetic trials and predictions, for looking at
report.png and for the tests that draw it: no model is trained."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.report.build import TrialResult, build_report
from core.report.classes import add_class_tests
from core.report.differences import TrialPredictions, compute_differences
from core.report.schema import PairDifference
from core.spec import DesignSpec
from tests.support.trials import make_trial

NAMES = ["conv128", "conv64x2", "conv64x3"]
LEVELS = {"conv128": 0.962, "conv64x2": 0.975, "conv64x3": 0.9755}


def article_trials(seeds: int = 5) -> list[TrialResult]:
    """Each seed moves every variant alike (a shared per-seed effect), plus its own noise."""
    rng = np.random.default_rng(7)
    shared = rng.normal(0.0, 0.004, seeds)
    return [
        make_trial(name, s, float(LEVELS[name] + shared[s] + rng.normal(0.0, 0.0015)))
        for name in NAMES
        for s in range(seeds)
    ]


def _predictions(trials: list[TrialResult]) -> list[TrialPredictions]:
    rng = np.random.default_rng(8)
    n, k = 400, 10
    labels = np.repeat(np.arange(k), n // k)
    out = []
    for t in trials:
        assert t.test_accuracy is not None
        wrong = rng.random(n) > t.test_accuracy
        if t.variant == "conv128":  # errs on other examples at a similar rate
            wrong = np.roll(wrong, 7)
        predicted = np.where(wrong, (labels + 1) % k, labels)
        p_true = np.where(wrong, 0.2, 0.9)
        out.append(
            TrialPredictions(
                f"{t.variant}-{t.seed}",
                t.variant,
                t.seed,
                np.arange(n),
                labels,
                predicted,
                p_true,
                np.full(n, 0.9),
            )
        )
    return out


def article_report(seeds: int = 5) -> tuple[dict[str, Any], list[TrialResult]]:
    trials = article_trials(seeds)
    preds = _predictions(trials)
    pairs = [("conv128", "conv64x2"), ("conv128", "conv64x3")]
    differences = compute_differences(
        preds,
        pairs,
        cka_last_hidden={p: {"cka": 0.71, "within_a": 0.93, "within_b": 0.9} for p in pairs},
        noun="test digits",
    )
    add_class_tests(differences, preds)
    report = build_report(
        comparison_id="article",
        primary_metric="test_accuracy",
        variant_order=NAMES,
        trials=trials,
        final=True,
        design=DesignSpec(split="per_seed", baseline="conv128", seeds=list(range(seeds))),
        differences=[PairDifference.model_validate(d) for d in differences],
    )
    return report, trials
