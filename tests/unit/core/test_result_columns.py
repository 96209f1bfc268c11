"""The trial's result columns, declared once (core.store.tables.RESULT_COLUMNS), and the
copies reuse makes of a trial's result and stored analysis."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.report.similarity import encode_predictions
from core.store.tables import (
    RESULT_COLUMNS,
    TRAINED_COLUMNS,
    Base,
    EpochMetric,
    Trial,
    TrialLayerGram,
    TrialPrediction,
)
from core.trials.lifecycle import finish_trial
from core.trials.reuse import copy_result
from worker.training import TrainResult


def test_result_columns_are_trial_columns_and_training_fills_its_own() -> None:
    assert set(RESULT_COLUMNS) <= set(Trial.__table__.c.keys())
    assert set(TRAINED_COLUMNS) < set(RESULT_COLUMNS)
    # The worker stores TrainResult's field of each trained column under the same name.
    assert set(TRAINED_COLUMNS) <= {f.name for f in dataclasses.fields(TrainResult)}


def test_finish_trial_refuses_a_name_that_is_not_a_final_state() -> None:
    with pytest.raises(TypeError, match="test_acuracy"):
        finish_trial(cast(Session, None), "t", owner=None, status="succeeded", test_acuracy=0.9)


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _trial(trial_id: str, seed: int, **values: Any) -> Trial:
    return Trial(id=trial_id, comparison_id="c", variant="v", variant_index=0, seed=seed, **values)


def test_a_reused_trial_gets_every_result_column_and_refers_to_the_stored_analysis(
    session: Session,
) -> None:
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    result: dict[str, Any] = {
        "params": 11,
        "trainable_params": 10,
        "flops": 1234,
        "epochs_done": 2,
        "train_seconds": 1.5,
        "test_accuracy": 0.75,
        "test_loss": 0.5,
        "best_val_accuracy": 0.8,
        "test_metrics": {"loss": 0.5, "accuracy": 0.75},
        "inference_ms_per_sample": 0.25,
        "stop_reason": "early_stopping",
        "worker": "host:1",
        "device": "CPU",
        "started_at": when,
        "finished_at": when,
    }
    assert set(result) == set(RESULT_COLUMNS)  # a new column gets a value here too
    source = _trial("s", 0, status="succeeded", **result)
    session.add(source)
    session.add(EpochMetric(trial_id="s", epoch=1, values={"loss": 0.9}, seconds=0.7))
    probs = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    session.add(encode_predictions("s", [7, 8, 9], [1, 0, 0], probs))
    session.add_all(
        TrialLayerGram(
            trial_id="s",
            layer_index=i,
            layer=f"dense_{i}",
            kind="Dense",
            probe_size=3,
            probe_hash="h",
            gram=bytes([i, 1, 2]),
        )
        for i in (0, 2)
    )
    session.flush()
    target = _trial("t", 1)
    session.add(target)
    copy_result(session, source, target)
    session.commit()

    copied = session.get_one(Trial, "t")
    assert {c: getattr(copied, c) for c in RESULT_COLUMNS} == result
    assert (copied.status, copied.reused_from) == ("succeeded", "s")
    rows = session.scalars(select(EpochMetric).where(EpochMetric.trial_id == "t")).all()
    assert [(e.epoch, e.values, e.seconds) for e in rows] == [(1, {"loss": 0.9}, 0.7)]

    # The stored analysis is referred to, not copied: one set of rows, read under either trial.
    assert (copied.analysis_id, copied.analysis_key, source.analysis_key) == ("s", "s", "s")
    assert session.get(TrialPrediction, "t") is None
    assert session.scalars(select(TrialLayerGram.trial_id).distinct()).all() == ["s"]
    reused_again = _trial("u", 2)
    session.add(reused_again)
    copy_result(session, copied, reused_again)
    assert (reused_again.reused_from, reused_again.analysis_id) == ("s", "s")
