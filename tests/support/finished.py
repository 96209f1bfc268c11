"""A finished comparison written straight into the tables, as the workers leave one: trials
with their results and learning curves, test predictions and per-layer Grams (synthetic,
seeded), for the tests and the benchmark of the stored report."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core.config import Settings
from core.report.cka import center_gram, gram_linear, pack_gram
from core.report.similarity import encode_predictions, probe_hash
from core.spec import ComparisonSpec
from core.store.tables import Comparison, EpochMetric, TrialLayerGram
from core.trials.planning import build_trials
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp

__all__ = ["finished_comparison"]


def _grams(rng: np.random.Generator, probe: int, layers: int) -> list[bytes]:
    return [pack_gram(center_gram(gram_linear(rng.normal(size=(probe, 8))))) for _ in range(layers)]


def finished_comparison(
    s: Session,
    *,
    variants: int = 2,
    seeds: int = 3,
    n_test: int = 200,
    probe: int = 0,
    status: str = "succeeded",
    classes: int = 10,
) -> Comparison:
    """A comparison of ``variants`` x ``seeds`` succeeded trials with 3 epochs each, ``n_test``
    stored test predictions per trial (the same test examples for every seed) and, with a
    ``probe`` size, two layers' Grams per trial; committed."""
    body: dict[str, Any] = {
        "name": "finished",
        "dataset": {"name": "mnist_5k", "max_samples": 300},
        "training": {"epochs": 3},
        "seeds": list(range(seeds)),
        "variants": [(small_cnn if i % 2 == 0 else small_mlp)(f"v{i}") for i in range(variants)],
    }
    validated = validate_comparison(ComparisonSpec.model_validate(body), Settings())
    comparison = Comparison(
        tenant="default",
        name="finished",
        status=status,
        spec=validated.spec,
        analyses=validated.analyses,
        trials_total=variants * seeds,
    )
    s.add(comparison)
    s.flush()
    rng = np.random.default_rng(7)
    trials = build_trials(comparison.id, validated.spec, validated.analyses, list(range(seeds)))
    labels = rng.integers(0, classes, n_test)
    for t in trials:
        t.status = "succeeded"
        t.test_accuracy = 0.9 + 0.01 * t.variant_index + float(rng.normal(0, 0.01))
        t.test_loss = 1 - t.test_accuracy
        t.best_val_accuracy = t.test_accuracy
        t.epochs_done = 3
        t.epochs_planned = 3
    s.add_all(trials)
    s.flush()
    hashed = probe_hash(np.arange(probe))
    for t in trials:
        for epoch in (1, 2, 3):
            values = {"val_accuracy": 0.3 * epoch, "val_loss": 1.0 / epoch, "loss": 1.0 / epoch}
            s.add(EpochMetric(trial_id=t.id, epoch=epoch, values=values, seconds=0.1))
        probs = rng.dirichlet(np.ones(classes), n_test).astype(np.float32)
        s.add(encode_predictions(t.id, np.arange(n_test), labels, probs))
        for i, gram in enumerate(_grams(rng, probe, 2) if probe else []):
            s.add(
                TrialLayerGram(
                    trial_id=t.id,
                    layer_index=i,
                    layer=f"layer{i}",
                    kind="Dense",
                    probe_size=probe,
                    probe_hash=hashed,
                    gram=gram,
                )
            )
        s.flush()
    s.commit()
    return comparison
