"""The worker's trial path in this process, on a real Postgres, with TensorFlow really training.

``worker.tasks.run_trial`` is what a Celery delivery runs; here it is called directly, so a
failure can be put at an exact point: a database error raised from one of the worker's own
calls (the database itself stays real and reachable for everything else), or a cancel written
while the dataset loads. A later ``run_trial`` is the retry a redelivery or the sweeper makes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from core.config import get_settings
from core.store.db import session_scope
from core.store.tables import Comparison, EpochMetric, Trial
from core.trials.lifecycle import finish_trial, upsert_epoch
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = [pytest.mark.services]

EPOCHS = 3


@pytest.fixture
def worker_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import worker.db_retries
    import worker.tasks

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(worker.db_retries, "DB_RETRY_DELAYS", (0.0, 0.0))
    with fresh_database("archbench_inproc") as url, in_process_database(url, monkeypatch):
        yield


def submit(epochs: int = EPOCHS) -> tuple[str, str]:
    from core.spec import ComparisonSpec
    from core.trials.comparisons import create_comparison
    from core.trials.validation import validate_comparison

    spec = tiny_spec("inproc", seeds=[0], epochs=epochs, samples=200, variants=[small_mlp()])
    validated = validate_comparison(ComparisonSpec.model_validate(spec), get_settings())
    with session_scope() as s:
        c, (tid,), _ = create_comparison(
            s, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
        return c.id, tid


def rows(trial_id: str) -> dict[int, datetime]:
    with session_scope() as s:
        q = select(EpochMetric.epoch, EpochMetric.recorded_at).where(
            EpochMetric.trial_id == trial_id
        )
        return {int(e): at for e, at in s.execute(q)}


def trial(trial_id: str) -> Trial:
    with session_scope() as s:
        return s.get_one(Trial, trial_id)


def outage(*_: Any, **__: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def checkpoint_state(trial_id: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(
        (get_settings().checkpoints / trial_id / "state.json").read_text()
    )
    return state


def test_a_database_outage_hands_the_trial_back_and_it_resumes(
    worker_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel check shrugs an outage off; a write that keeps failing hands the trial back
    (not failed), and the next attempt stores the row the outage lost and trains on."""
    import worker.tasks as tasks

    _, tid = submit()
    real_upsert = upsert_epoch  # the one worker.tasks writes with

    def upsert(session: Any, trial_id: str, **kw: Any) -> None:
        if kw["epoch"] == 2:
            outage()
        real_upsert(session, trial_id, **kw)

    with monkeypatch.context() as m:
        m.setattr(tasks, "upsert_epoch", upsert)
        m.setattr(tasks, "_cancel_requested", outage)
        assert tasks.run_trial(tid) == "retry"
    row = trial(tid)
    assert (row.status, row.error, row.lease_owner, row.attempts) == ("queued", None, None, 1)
    assert sorted(rows(tid)) == [1]
    assert checkpoint_state(tid)["epoch"] == 2  # committed before its row was refused

    first = rows(tid)
    assert tasks.run_trial(tid) == "succeeded"
    row = trial(tid)
    assert (row.status, row.attempts, row.epochs_done) == ("succeeded", 2, EPOCHS)
    after = rows(tid)
    assert sorted(after) == list(range(1, EPOCHS + 1))
    assert after[1] == first[1]  # kept, not retrained
    assert not (get_settings().checkpoints / tid).exists()


def test_a_claim_whose_commit_lost_its_answer_is_still_ours(
    worker_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim commits, then the connection drops before the answer comes back: the retry
    finds the trial running under this delivery's own lease and trains it, on that attempt
    (not refused as somebody else's, leaving it stuck until the lease expires)."""
    import worker.tasks as tasks

    _, tid = submit()
    real_scope = session_scope  # the one worker.tasks opens
    ended: list[int] = []

    @contextmanager
    def scope() -> Iterator[Any]:
        with real_scope() as s:
            yield s
        ended.append(1)
        if len(ended) == 1:  # the claim's transaction: committed, its answer lost
            outage()

    monkeypatch.setattr(tasks, "session_scope", scope)
    assert tasks.run_trial(tid) == "succeeded"
    row = trial(tid)
    assert (row.status, row.attempts, row.epochs_done) == ("succeeded", 1, EPOCHS)


def test_a_result_whose_commit_lost_its_answer_is_not_a_lost_lease(
    worker_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result commits, then the connection drops before the answer comes back: the retry
    finds the lease released by this attempt's own result and finishes the job (checkpoint
    removed, comparison closed) instead of reporting the trial lost to another worker."""
    import worker.tasks as tasks

    cid, tid = submit()
    real_scope, real_finish = session_scope, finish_trial  # the ones worker.tasks uses
    wrote: list[str] = []

    def finish(session: Any, trial_id: str, **kw: Any) -> bool:
        wrote.append(kw["status"])
        return real_finish(session, trial_id, **kw)

    @contextmanager
    def scope() -> Iterator[Any]:
        with real_scope() as s:
            yield s
        if wrote == ["succeeded"]:  # the result's transaction: committed, its answer lost
            wrote.append("answer lost")
            outage()

    monkeypatch.setattr(tasks, "finish_trial", finish)
    monkeypatch.setattr(tasks, "session_scope", scope)
    assert tasks.run_trial(tid) == "succeeded"
    assert wrote == ["succeeded", "answer lost"]  # written once, not again
    row = trial(tid)
    assert (row.status, row.attempts, row.epochs_done) == ("succeeded", 1, EPOCHS)
    assert row.test_accuracy is not None
    assert not (get_settings().checkpoints / tid).exists()
    with session_scope() as s:
        assert s.get_one(Comparison, cid).status == "succeeded"


def test_a_crash_after_the_last_epoch_does_not_retrain_the_trial(
    worker_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies (here: loses the database) after training, before storing the result:
    the retry finds the final checkpoint and only evaluates; every epoch row is kept."""
    import worker.tasks as tasks

    cid, tid = submit()
    with monkeypatch.context() as m:
        m.setattr(tasks, "finish_trial", outage)
        assert tasks.run_trial(tid) == "retry"
    trained = rows(tid)
    assert sorted(trained) == list(range(1, EPOCHS + 1))
    state = checkpoint_state(tid)
    assert (state["epoch"], state["final"]) == (EPOCHS, True)

    assert tasks.run_trial(tid) == "succeeded"
    row = trial(tid)
    assert (row.status, row.attempts, row.epochs_done) == ("succeeded", 2, EPOCHS)
    assert row.test_accuracy is not None
    assert rows(tid) == trained  # no epoch trained, deleted or written again
    assert not (get_settings().checkpoints / tid).exists()
    with session_scope() as s:
        assert s.get_one(Comparison, cid).status == "succeeded"


def test_a_cancel_while_the_dataset_loads_is_honoured_at_once(
    worker_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.datasets
    import worker.tasks as tasks

    cid, tid = submit()
    real_load = worker.datasets.load_dataset

    def slow_load(*args: Any, **kw: Any) -> Any:
        with session_scope() as s:  # the user cancels while the data loads
            s.execute(update(Comparison).where(Comparison.id == cid).values(cancel_requested=True))
        time.sleep(8)  # a first download
        return real_load(*args, **kw)

    monkeypatch.setattr(worker.datasets, "load_dataset", slow_load)
    t0 = time.monotonic()
    assert tasks.run_trial(tid) == "cancelled"
    took = time.monotonic() - t0
    assert took < 5, took
    row = trial(tid)
    assert (row.status, row.stop_reason, row.epochs_done) == ("cancelled", "cancelled", 0)
    with session_scope() as s:
        assert s.get_one(Comparison, cid).status == "cancelled"
