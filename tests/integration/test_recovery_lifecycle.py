"""Leases, claims, the sweeper and cancel as guarded statements, on real Postgres and SQLite.

No worker process: ``core.trials.lifecycle``, ``core.trials.sweeper``,
``core.trials.comparisons`` and the worker's
claim path (``worker.tasks.run_trial`` up to the claim) run in this process against a real
database, each race set up by writing the rows as the other party would have left them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update

from core.config import Settings, get_settings
from core.errors import Conflict
from core.store.db import session_scope
from core.store.tables import Comparison, EpochMetric, Trial, utcnow
from core.trials.comparisons import cancel_comparison
from core.trials.lifecycle import (
    LeaseLost,
    claim_trial,
    finish_trial,
    renew_lease,
    upsert_epoch,
)
from core.trials.sweeper import sweep
from tests.support.helpers import stored_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = [pytest.mark.services]


@pytest.fixture(params=["postgresql", "sqlite"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """This process on a fresh, migrated database, with two attempts per trial."""
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_MAX_ATTEMPTS", "2")
    if request.param == "postgresql":
        with fresh_database("archbench_life") as url, in_process_database(url, monkeypatch):
            yield get_settings()
    else:
        with in_process_database(f"sqlite:///{tmp_path / 'life.db'}", monkeypatch):
            yield get_settings()


def make_trial(
    status: str = "running",
    *,
    attempts: int = 1,
    owner: str | None = "w1",
    lease: float | None = 60,
    cancel_requested: bool = False,
    comparison_status: str = "running",
) -> tuple[str, str]:
    """A comparison with one trial in the given state; ``lease`` in seconds from now
    (negative: expired). Returns (comparison id, trial id)."""
    with session_scope() as s:
        c = Comparison(
            tenant="default",
            name="life",
            status=comparison_status,
            spec=stored_spec(),
            trials_total=1,
            epochs_total=3,
            cancel_requested=cancel_requested,
        )
        s.add(c)
        s.flush()
        t = Trial(
            comparison_id=c.id,
            variant="v",
            variant_index=0,
            seed=0,
            status=status,
            attempts=attempts,
            epochs_planned=3,
            lease_owner=owner if status == "running" else None,
            lease_expires_at=utcnow() + timedelta(seconds=lease)
            if lease is not None and status == "running"
            else None,
        )
        s.add(t)
        s.flush()
        return c.id, t.id


def trial(trial_id: str) -> Trial:
    with session_scope() as s:
        return s.get_one(Trial, trial_id)


def comparison(comparison_id: str) -> Comparison:
    with session_scope() as s:
        return s.get_one(Comparison, comparison_id)


def checkpoint(settings: Settings, name: str) -> Path:
    folder = settings.checkpoints / name
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{}")
    return folder


def test_a_stale_owner_cannot_write_epochs_or_the_result(db: Settings) -> None:
    _, tid = make_trial(owner="w2")  # the sweeper gave it to w2; w1 does not know yet
    with session_scope() as s, pytest.raises(LeaseLost):
        upsert_epoch(s, tid, owner="w1", epoch=1, values={"loss": 1.0}, seconds=1, lease_seconds=60)
    with session_scope() as s, pytest.raises(LeaseLost):
        renew_lease(s, tid, owner="w1", lease_seconds=60)
    with session_scope() as s:
        assert not finish_trial(s, tid, owner="w1", status="succeeded", test_accuracy=0.9)
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(EpochMetric.trial_id == tid)) == 0
    row = trial(tid)
    assert (row.status, row.lease_owner, row.test_accuracy, row.epochs_done) == (
        "running",
        "w2",
        None,
        0,
    )
    # The owner itself writes.
    with session_scope() as s:
        upsert_epoch(s, tid, owner="w2", epoch=1, values={"loss": 1.0}, seconds=1, lease_seconds=60)
        assert finish_trial(s, tid, owner="w2", status="succeeded", test_accuracy=0.9)
    assert (trial(tid).status, trial(tid).epochs_done) == ("succeeded", 1)


def test_a_claim_never_exceeds_the_attempt_limit(db: Settings) -> None:
    """A running trial whose lease expired is claimable only with attempts left; the worker
    that meets one without fails it with the reason and removes its checkpoint."""
    from worker.tasks import run_trial

    cid, spent = make_trial(attempts=2, lease=-5)
    _, left = make_trial(attempts=1, lease=-5)
    with session_scope() as s:
        assert not claim_trial(s, spent, owner="w9", worker="h:1", lease_seconds=60, max_attempts=2)
        assert claim_trial(s, left, owner="w9", worker="h:1", lease_seconds=60, max_attempts=2)
    assert (trial(spent).attempts, trial(left).attempts, trial(left).lease_owner) == (2, 2, "w9")

    folder = checkpoint(db, spent)
    assert run_trial(spent) == "failed"
    row = trial(spent)
    assert (row.status, row.attempts, row.lease_owner) == ("failed", 2, None)
    assert row.error is not None
    assert "attempt limit 2" in row.error["detail"]
    assert not folder.exists()
    assert comparison(cid).status == "failed"
    # A queued trial with no attempts left is failed the same way, never claimed.
    _, queued = make_trial("queued", attempts=2)
    assert run_trial(queued) == "failed"
    assert (trial(queued).status, trial(queued).attempts) == ("failed", 2)


def test_leases_are_judged_on_the_database_clock(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker or sweeper whose clock runs an hour ahead does not take a live lease."""
    _, tid = make_trial("queued", attempts=0)
    with session_scope() as s:
        assert claim_trial(s, tid, owner="w1", worker="h:1", lease_seconds=60, max_attempts=2)
        db_now = s.scalar(select(func.now())) if db.database_url.startswith("postgresql") else None
    if db_now is not None:  # SQLite's clock is this machine's anyway
        lease = trial(tid).lease_expires_at
        assert lease is not None
        assert timedelta(seconds=55) < lease - db_now < timedelta(seconds=65)

    ahead = utcnow() + timedelta(hours=1)
    import core.trials.lifecycle
    import core.trials.sweeper

    monkeypatch.setattr(core.trials.lifecycle, "utcnow", lambda: ahead)
    monkeypatch.setattr(core.trials.sweeper, "utcnow", lambda: ahead)
    with session_scope() as s:
        assert not claim_trial(s, tid, owner="w2", worker="h:2", lease_seconds=60)
    done = sweep(db)
    assert tid not in done.requeued + done.failed
    row = trial(tid)
    assert (row.status, row.lease_owner, row.attempts) == ("running", "w1", 1)


def test_cancel_of_a_comparison_that_just_ended_is_a_conflict(db: Settings) -> None:
    cid, tid = make_trial()
    with session_scope() as api:
        seen = api.get_one(Comparison, cid)  # read while still running
        assert seen.status == "running"
        # Its last trial finishes and the worker closes it before the cancel is written.
        with session_scope() as worker:
            finish_trial(worker, tid, owner="w1", status="succeeded")
            worker.execute(
                update(Comparison).where(Comparison.id == cid).values(status="succeeded")
            )
        with pytest.raises(Conflict, match="succeeded"):
            cancel_comparison(api, seen)
    row = comparison(cid)
    assert (row.status, row.cancel_requested) == ("succeeded", False)

    running, _ = make_trial()
    with session_scope() as api:
        cancel_comparison(api, api.get_one(Comparison, running))
    assert comparison(running).cancel_requested


def test_the_sweeper_ends_an_expired_trial_of_a_cancelled_comparison(db: Settings) -> None:
    """No worker would ever end it: the sweeper cancels it (not requeue) and closes the
    comparison; the worker's own claim path does the same with a queued one."""
    from worker.tasks import run_trial

    cid, tid = make_trial(lease=-5, cancel_requested=True)
    folder = checkpoint(db, tid)
    done = sweep(db)
    assert (done.cancelled, done.requeued) == ([tid], [])
    row = trial(tid)
    assert (row.status, row.stop_reason, row.lease_owner) == ("cancelled", "cancelled", None)
    assert comparison(cid).status == "cancelled"
    assert not folder.exists()

    # A trial requeued before the cancel, whose message arrives after it.
    cid2, queued = make_trial("queued", attempts=1, cancel_requested=True)
    folder = checkpoint(db, queued)
    assert run_trial(queued) == "cancelled"
    assert (trial(queued).status, comparison(cid2).status) == ("cancelled", "cancelled")
    assert not folder.exists()


def test_the_sweeper_removes_the_checkpoints_of_ended_trials(db: Settings) -> None:
    cid, exhausted = make_trial(attempts=2, lease=-5)
    _, live = make_trial()
    _, succeeded = make_trial("succeeded", owner=None)
    _, queued_cancelled = make_trial("queued", cancel_requested=True)
    with session_scope() as api:  # a cancel in the api, which may not see the folder
        cancel_comparison(api, api.get_one(Comparison, trial(queued_cancelled).comparison_id))
    folders = {
        name: checkpoint(db, name)
        for name in (exhausted, live, succeeded, queued_cancelled, str(uuid.uuid4()))
    }
    other = db.checkpoints / "not-a-trial"
    other.mkdir()

    done = sweep(db)
    assert done.failed == [exhausted]
    row = trial(exhausted)
    assert row.status == "failed"
    assert row.error is not None
    assert "attempt limit 2" in row.error["detail"]
    assert comparison(cid).status == "failed"
    kept = {name for name, folder in folders.items() if folder.exists()}
    assert kept == {live}
    assert other.exists()
    assert sorted(done.checkpoints_removed) == sorted(set(folders) - {live, exhausted})


def test_a_claim_that_cannot_reach_the_database_puts_its_message_back(
    db: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage at claim time is retried; one that outlasts the retries rejects the message
    back onto the queue (acked, it would be the trial's last trace), leaving the row queued."""
    from celery.exceptions import Reject
    from sqlalchemy.exc import OperationalError

    import worker.db_retries as db_retries
    import worker.tasks as tasks

    monkeypatch.setattr(db_retries, "DB_RETRY_DELAYS", (0.0, 0.0))
    _, tid = make_trial("queued", attempts=0)
    tries: list[str] = []
    real_claim = claim_trial  # the one worker.tasks claims with

    def claim(*args: Any, **kw: Any) -> bool:
        tries.append(args[1])
        if len(tries) < 3 or fail_always:
            raise OperationalError("UPDATE trials", {}, Exception("connection refused"))
        return real_claim(*args, **kw)

    fail_always = True
    monkeypatch.setattr(tasks, "claim_trial", claim)
    with pytest.raises(Reject) as rejected:
        tasks.run_trial(tid)
    assert rejected.value.requeue is True
    assert tries == [tid] * 3  # the first try and the two retries
    row = trial(tid)
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)

    # A shorter outage: the third try claims it (an exhausted trial, so nothing trains).
    _, spent = make_trial("queued", attempts=2)
    tries.clear()
    fail_always = False
    assert tasks.run_trial(spent) == "failed"
    assert len(tries) == 3
    assert trial(spent).status == "failed"


def test_the_sweeper_resends_a_queued_trial_whose_message_is_lost(db: Settings) -> None:
    """A trial sent long ago, still queued while a worker process is idle, lost its message:
    it is sent again, once per window; behind busy workers, or with none, it is left alone."""
    from worker.heartbeat import beat

    sweep(db)  # this process's first look at its broker re-sends every queued trial
    _, lost = make_trial("queued", attempts=0)
    make_trial("running")  # a live lease: one busy worker process
    _, recent = make_trial("queued", attempts=0)
    long_ago = utcnow() - timedelta(seconds=2 * db.resend_queued_seconds)
    with session_scope() as s:
        s.execute(update(Trial).where(Trial.id == lost).values(enqueued_at=long_ago))
        s.execute(update(Trial).where(Trial.id == recent).values(enqueued_at=utcnow()))

    assert lost not in sweep(db).enqueued  # no worker alive: nobody to take it
    beat("celery@busy", 1, [101])
    assert lost not in sweep(db).enqueued  # the only process is busy: a queue, not a loss
    beat("celery@busy", 2, [101, 102])
    done = sweep(db)
    assert (done.enqueued, done.resent_lost) == ([lost], [lost])
    sent_at = trial(lost).enqueued_at
    assert sent_at is not None
    assert sent_at > long_ago + timedelta(seconds=db.resend_queued_seconds)
    assert sweep(db).enqueued == []  # sent again at most once per window
    assert (trial(lost).status, trial(recent).enqueued_at is not None) == ("queued", True)


@pytest.fixture
def pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """This process on a fresh, migrated Postgres database (row locks, deadlock detection)."""
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with fresh_database("archbench_locks") as url, in_process_database(url, monkeypatch):
        yield get_settings()


def _deadlocks() -> int:
    """Deadlocks Postgres detected in this database so far (backends report at exit)."""
    from core.store.db import get_engine

    get_engine().dispose()  # every pooled backend exits and flushes its statistics
    time.sleep(0.5)
    with session_scope() as s:
        s.execute(text("SELECT pg_stat_clear_snapshot()"))
        return int(
            s.scalar(
                text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            )
            or 0
        )


def test_claims_and_cancels_at_once_never_deadlock(pg: Settings) -> None:
    """A worker claiming a trial of a queued comparison while its user cancels it: both take
    the trial's row and the comparison's, in one order, so neither waits for the other in a
    cycle. Every statement is slowed down to make the two interleave."""
    from core.store.db import get_engine

    pairs = []
    for _ in range(10):
        cid, first = make_trial("queued", attempts=0, comparison_status="queued")
        with session_scope() as s:
            for seed in (1, 2):
                s.add(
                    Trial(
                        comparison_id=cid,
                        variant="v",
                        variant_index=0,
                        seed=seed,
                        epochs_planned=3,
                    )
                )
        pairs.append((cid, first))
    before = _deadlocks()

    def slow(*_: Any) -> None:
        time.sleep(0.05)

    event.listen(get_engine(), "before_cursor_execute", slow)

    def claim(trial_id: str, start: threading.Barrier) -> bool:
        start.wait()
        with session_scope() as s:
            return claim_trial(s, trial_id, owner="w1", worker="h:1", lease_seconds=60)

    def cancel(comparison_id: str, start: threading.Barrier) -> None:
        with session_scope() as s:
            seen = s.get_one(Comparison, comparison_id)
            start.wait()
            cancel_comparison(s, seen)

    try:
        with ThreadPoolExecutor(2 * len(pairs)) as pool:
            jobs = []
            for cid, tid in pairs:
                start = threading.Barrier(2)
                jobs.append((pool.submit(claim, tid, start), pool.submit(cancel, cid, start)))
            outcomes = [
                (claimed.result(timeout=60), cancelled.result(timeout=60))
                for claimed, cancelled in jobs
            ]
    finally:
        event.remove(get_engine(), "before_cursor_execute", slow)

    for (cid, tid), (claimed, _) in zip(pairs, outcomes, strict=True):
        with session_scope() as s:
            states = dict(
                s.execute(select(Trial.id, Trial.status).where(Trial.comparison_id == cid)).all()
            )
        row = comparison(cid)
        assert row.cancel_requested
        others = {t: st for t, st in states.items() if t != tid}
        assert set(others.values()) == {"cancelled"}
        if claimed:  # claimed first: it runs (and stops at its next check), the rest never start
            assert (states[tid], row.status) == ("running", "running")
        else:  # cancelled first: nothing is claimable, the comparison ends
            assert (states[tid], row.status) == ("cancelled", "cancelled")
    assert _deadlocks() == before
