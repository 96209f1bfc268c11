"""Finish a submitted comparison's trials as a worker would, without training: each trial
succeeds with its epoch rows and a stored analysis (predictions and Grams) of a given size,
written where worker.analysis writes them, so reuse and the storage quota can be tested on
the sizes the service really stores."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from core.report.cka import pack_gram
from core.report.similarity import encode_predictions
from core.status import ComparisonStatus, TrialStatus
from core.store.db import session_scope
from core.store.tables import Comparison, EpochMetric, Trial, TrialLayerGram, utcnow


def finish_with_analysis(
    comparison_id: str,
    *,
    n_test: int,
    num_classes: int = 10,
    probe: int = 0,
    grams: int = 0,
    epochs: int = 1,
) -> int:
    """Mark every trial of the comparison succeeded with ``epochs`` epoch rows, predictions
    over ``n_test`` examples and ``grams`` packed Grams over ``probe`` examples; returns the
    bytes of analysis written (the arrays' lengths, as the database keeps them)."""
    rng = np.random.default_rng(0)
    written = 0
    now = utcnow()
    with session_scope() as s:
        ids = list(s.scalars(select(Trial.id).where(Trial.comparison_id == comparison_id)))
        for trial_id in ids:
            pred = encode_predictions(
                trial_id,
                np.arange(n_test),
                rng.integers(0, num_classes, n_test),
                rng.dirichlet(np.ones(num_classes), size=n_test),
            )
            s.add(pred)
            written += sum(len(b) for b in (pred.examples, pred.labels, pred.predicted, pred.probs))
            for layer in range(grams):
                x = rng.normal(size=(probe, 8))
                gram = pack_gram(x @ x.T)
                s.add(
                    TrialLayerGram(
                        trial_id=trial_id,
                        layer_index=layer,
                        layer=f"dense_{layer}",
                        kind="Dense",
                        probe_size=probe,
                        probe_hash="p" * 64,
                        gram=gram,
                    )
                )
                written += len(gram)
            s.add_all(
                EpochMetric(trial_id=trial_id, epoch=e, values={"loss": 1.0}, seconds=0.1)
                for e in range(1, epochs + 1)
            )
        s.execute(
            update(Trial)
            .where(Trial.comparison_id == comparison_id)
            .values(
                status=TrialStatus.SUCCEEDED,
                attempts=1,
                epochs_done=epochs,
                test_accuracy=0.5,
                started_at=now,
                finished_at=now,
            )
        )
        s.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id)
            .values(status=ComparisonStatus.SUCCEEDED, started_at=now, finished_at=now)
        )
    return written
