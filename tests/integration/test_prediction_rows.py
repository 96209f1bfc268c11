"""The rows of ``GET /predictions`` (core.report.similarity.prediction_rows) on SQLite and Postgres:
every stored prediction of the succeeded trials, in the tables' order, each trial read in a
short session of its own, so no pooled connection is held while its rows are sent.

The predictions are written straight into the database (what worker.analysis writes), so no
model is trained; test_differences_live reads them from a trained comparison.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.pool import QueuePool

from core.store.tables import Comparison, Trial, new_id, utcnow
from tests.support.helpers import small_mlp, stored_spec
from tests.support.services import fresh_database, in_process_database

N_TEST = 7


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    with (
        fresh_database("archbench_predictions")
        if request.param == "postgres"
        else contextlib.nullcontext(f"sqlite:///{tmp_path / 'predictions.db'}") as url,
        in_process_database(url, monkeypatch),
    ):
        yield


def store(comparison_id: str) -> list[dict[str, Any]]:
    """Two variants x two seeds, written out of order, that kept predictions; a failed trial
    that did too and a succeeded one that did not (neither is a row). Returns the expected
    rows, in order: variant index, then seed."""
    from core.report.similarity import encode_predictions
    from core.store.db import session_scope

    rng = np.random.default_rng(3)
    now = utcnow()
    expected: dict[tuple[int, int], list[dict[str, Any]]] = {}
    trials = [("zeta", 0, 1), ("alpha", 1, 0), ("zeta", 0, 0), ("alpha", 1, 1)]
    others = [("zeta", 0, 2, "failed", True), ("alpha", 1, 2, "succeeded", False)]
    with session_scope() as s:
        s.execute(
            insert(Comparison).values(
                id=comparison_id,
                tenant="default",
                name="predictions",
                status="succeeded",
                spec=stored_spec(
                    variants=[
                        {**small_mlp("zeta"), "input_shape": [28, 28, 1]},
                        {**small_mlp("alpha"), "input_shape": [28, 28, 1]},
                    ]
                ),
                analyses={},
                created_at=now,
                trials_total=6,
                epochs_total=6,
                cancel_requested=False,
            )
        )
        for variant, index, seed, status, kept in [
            *((v, i, sd, "succeeded", True) for v, i, sd in trials),
            *others,
        ]:
            trial_id = new_id()
            s.execute(
                insert(Trial).values(
                    id=trial_id,
                    comparison_id=comparison_id,
                    variant=variant,
                    variant_index=index,
                    seed=seed,
                    status=status,
                    attempts=1,
                    epochs_planned=1,
                    epochs_done=1,
                    created_at=now,
                )
            )
            if not kept:
                continue
            examples = rng.permutation(1000)[:N_TEST]
            labels = rng.integers(0, 3, N_TEST)
            probs = rng.dirichlet(np.ones(3), size=N_TEST)
            s.add(encode_predictions(trial_id, examples, labels, probs))
            if status != "succeeded":
                continue
            stored = probs.astype(np.float16).astype(np.float32)
            expected[(index, seed)] = [
                {
                    "trial_id": trial_id,
                    "variant": variant,
                    "seed": seed,
                    "example": int(examples[i]),
                    "label": int(labels[i]),
                    "predicted": int(np.argmax(probs[i])),
                    "p_true": float(stored[i, labels[i]]),
                    "confidence": float(stored[i].max()),
                }
                for i in range(N_TEST)
            ]
    return [row for key in sorted(expected) for row in expected[key]]


def test_every_stored_prediction_in_order_and_no_connection_held(database: None) -> None:
    from core.report.similarity import prediction_rows
    from core.store.db import get_engine

    cid = new_id()
    expected = store(cid)
    assert [r["variant"] for r in expected[::N_TEST]] == ["zeta", "zeta", "alpha", "alpha"]
    pool = get_engine().pool
    assert isinstance(pool, QueuePool)
    rows = prediction_rows(cid)
    got = [next(rows)]
    # Between reads the generator holds no connection (each trial's session is closed).
    assert pool.checkedout() == 0
    got += rows
    assert got == expected
    assert list(prediction_rows(cid, "alpha")) == [r for r in expected if r["variant"] == "alpha"]
    assert list(prediction_rows(cid, "nope")) == []
    assert list(prediction_rows(new_id())) == []
