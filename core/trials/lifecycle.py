"""State transitions of trials and comparisons, each one guarded SQL statement.

Every write a worker makes is guarded by the lease it holds (``lease_owner``), so a worker
that lost its trial to the sweeper cannot overwrite the new owner's results. Leases are
written and compared on the database's clock (``db_now``), never a machine's own: a worker
whose clock runs ahead cannot expire another's lease early, nor one behind keep its own.

Lock order: a transaction that writes both takes trial rows first (several: by ascending id)
and the comparison's row last: the claim updates its trial, then its comparison; a cancel
locks the queued trials, then marks the comparison; the sweeper updates expired trials in id
order and finishes comparisons in transactions of their own (an adaptive comparison's next
round locks the comparison's row, then inserts its new trials: no existing trial row is
locked after it). The exceptions are the sweeper's
bulk stamps (``enqueued_at`` of the trials it re-sends, and the re-send after a broker reset),
which lock their rows in the plan's order: one of those can still deadlock with a cancel,
and then the loser is rolled back (``lock_conflict``): a cancel runs again, the sweeper's
pass ends and the next pass sends again. Nothing is lost either way.

Every change of a trial's or a comparison's ``status`` is a function here (the words are
``core.status``'s); the callers (the worker, the sweeper, a cancel, a reuse) decide when.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.errors import AttemptsExhausted, Problem, without_terminal_codes
from core.status import ComparisonStatus, StopReason, TrialStatus
from core.store.db import rows_changed, upsert_insert
from core.store.tables import (
    RESULT_COLUMNS,
    Comparison,
    EpochMetric,
    Trial,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "LOCK_CONFLICT_TRIES",
    "LeaseLost",
    "attempts_exhausted",
    "cancel_queued",
    "claim_trial",
    "db_now",
    "end_unclaimed",
    "fail_running_in",
    "failure_summary",
    "finish_trial",
    "json_safe",
    "lock_conflict",
    "mark_reused",
    "progress_of",
    "release_trial",
    "renew_lease",
    "requeue_expired",
    "rewind_trial",
    "upsert_epoch",
]


LOCK_CONFLICT_TRIES = 5  # runs of a short transaction that lost a deadlock or serialization
_LOCK_CONFLICTS = ("40P01", "40001")  # Postgres: deadlock_detected, serialization_failure


def lock_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the database rolled the transaction back, and
    running it again is safe."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in _LOCK_CONFLICTS


class LeaseLost(Exception):
    """This worker no longer owns the trial (its lease expired and another took it)."""


def db_now(session: Session, plus_seconds: float = 0) -> ColumnElement[datetime]:
    """The database server's current time (plus some seconds), as a SQL expression.

    SQLite has no ``now()`` with sub-second precision; its ``strftime`` renders the same text
    SQLAlchemy stores a timestamp as (UTC, microseconds), so comparisons stay textual and exact.
    """
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime(
            "%Y-%m-%d %H:%M:%f000", "now", f"{plus_seconds:+.3f} seconds", type_=UTCDateTime()
        )
    now: ColumnElement[datetime] = func.now()
    return now + timedelta(seconds=plus_seconds) if plus_seconds else now


def unclaimed(session: Session) -> ColumnElement[bool]:
    """A trial nobody holds: queued, or running under a lease that expired (database clock)."""
    return or_(
        Trial.status == TrialStatus.QUEUED,
        and_(Trial.status == TrialStatus.RUNNING, Trial.lease_expires_at < db_now(session)),
    )


def attempts_exhausted(attempts: int, limit: int) -> Problem:
    """The problem stored on a trial that used up its attempts."""
    return AttemptsExhausted(
        f"the worker running this trial stopped answering {attempts} times (attempt limit {limit})"
    ).to_problem()


def claim_trial(
    session: Session,
    trial_id: str,
    *,
    owner: str,
    worker: str,
    lease_seconds: int,
    max_attempts: int | None = None,
) -> bool:
    """Atomically take a queued trial (or one whose lease expired) that has attempts left;
    False if not ours to run (see ``end_unclaimed`` for one that used them all)."""
    now = utcnow()
    guard = [Trial.id == trial_id, unclaimed(session)]
    if max_attempts is not None:
        guard.append(Trial.attempts < max_attempts)
    result = session.execute(
        update(Trial)
        .where(*guard)
        .values(
            status=TrialStatus.RUNNING,
            attempts=Trial.attempts + 1,
            lease_owner=owner,
            lease_expires_at=db_now(session, lease_seconds),
            started_at=func.coalesce(Trial.started_at, now),
            worker=worker,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = bool(rows_changed(result))
    if claimed:
        comparison_id = session.scalar(select(Trial.comparison_id).where(Trial.id == trial_id))
        session.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id, Comparison.status == ComparisonStatus.QUEUED)
            .values(status=ComparisonStatus.RUNNING, started_at=now)
            .execution_options(synchronize_session=False)
        )
    return claimed


def end_unclaimed(
    session: Session,
    trial_id: str,
    *,
    status: TrialStatus,
    min_attempts: int | None = None,
    **values: Any,
) -> bool:
    """End a trial that nobody holds (queued, or its lease expired) with ``status``; with
    ``min_attempts``, only one that used at least that many. False when it was not free."""
    guard = [Trial.id == trial_id, unclaimed(session)]
    if min_attempts is not None:
        guard.append(Trial.attempts >= min_attempts)
    values.setdefault("finished_at", utcnow())
    if "error" in values:
        values["error"] = without_terminal_codes(values["error"])
    result = session.execute(
        update(Trial)
        .where(*guard)
        .values(status=status, lease_owner=None, lease_expires_at=None, **json_safe(values))
        .execution_options(synchronize_session=False)
    )
    return bool(rows_changed(result))


def fail_running_in(session: Session, trial_id: str, *, worker: str, error: Problem) -> str | None:
    """End as failed the trial still running in the worker process ``worker`` (host:pid),
    whatever its lease: that process is known to be dead (its parent saw it killed). Returns
    the trial's comparison id, or None when the trial was not running there."""
    result = session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.status == TrialStatus.RUNNING, Trial.worker == worker)
        .values(
            status=TrialStatus.FAILED,
            error=without_terminal_codes(error),
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(Trial.comparison_id)
        .execution_options(synchronize_session=False)
    )
    comparison_id = result.scalar()
    return None if comparison_id is None else str(comparison_id)


def release_trial(session: Session, trial_id: str, *, owner: str) -> bool:
    """Give our running trial back to the queue (the sweeper enqueues it; the next attempt
    resumes from its checkpoint); False when it was not ours any more."""
    result = session.execute(
        update(Trial)
        .where(
            Trial.id == trial_id, Trial.lease_owner == owner, Trial.status == TrialStatus.RUNNING
        )
        .values(
            status=TrialStatus.QUEUED, lease_owner=None, lease_expires_at=None, enqueued_at=None
        )
        .execution_options(synchronize_session=False)
    )
    return bool(rows_changed(result))


def requeue_expired(session: Session, trial_id: str) -> bool:
    """Put a running trial whose lease expired (its worker died or hung) back in the queue
    (the sweeper sends it again; the next attempt resumes from its checkpoint); False when
    someone got there first."""
    result = session.execute(
        update(Trial)
        .where(
            Trial.id == trial_id,
            Trial.status == TrialStatus.RUNNING,
            Trial.lease_expires_at < db_now(session),
        )
        .values(
            status=TrialStatus.QUEUED, lease_owner=None, lease_expires_at=None, enqueued_at=None
        )
        .execution_options(synchronize_session=False)
    )
    return bool(rows_changed(result))


def cancel_queued(session: Session, trial_ids: Sequence[str]) -> int:
    """End the still-queued ones of ``trial_ids`` as cancelled; returns how many.

    The caller locked those rows (trials first, by id: the module's lock order) before
    marking their comparison ``cancel_requested``.
    """
    if not trial_ids:
        return 0
    result = session.execute(
        update(Trial)
        .where(Trial.id.in_(trial_ids), Trial.status == TrialStatus.QUEUED)
        .values(
            status=TrialStatus.CANCELLED, finished_at=utcnow(), stop_reason=StopReason.CANCELLED
        )
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


def mark_reused(target: Trial, source: Trial) -> None:
    """``target``, a trial being created, ends at once with ``source``'s result (core.trials.reuse
    copies the result's fields and epochs)."""
    target.status = TrialStatus.SUCCEEDED
    target.reused_from = source.reused_from or source.id
    target.enqueued_at = utcnow()


def renew_lease(session: Session, trial_id: str, *, owner: str, lease_seconds: int) -> None:
    """Extend our lease; raise LeaseLost when the trial is no longer ours."""
    result = session.execute(
        update(Trial)
        .where(
            Trial.id == trial_id, Trial.lease_owner == owner, Trial.status == TrialStatus.RUNNING
        )
        .values(lease_expires_at=db_now(session, lease_seconds))
        .execution_options(synchronize_session=False)
    )
    if not rows_changed(result):
        raise LeaseLost(trial_id)


def _epoch_insert(
    session: Session, trial_id: str, epoch: int, values: dict[str, Any], seconds: float | None
) -> Any:
    return upsert_insert(session, EpochMetric).values(
        trial_id=trial_id,
        epoch=epoch,
        values=json_safe(values),
        seconds=seconds,
        recorded_at=utcnow(),
    )


def upsert_epoch(
    session: Session,
    trial_id: str,
    *,
    owner: str,
    epoch: int,
    values: dict[str, Any],
    seconds: float | None,
    lease_seconds: int,
) -> None:
    """Write one finished epoch (insert or replace) and advance the trial, under our lease."""
    renew_lease(session, trial_id, owner=owner, lease_seconds=lease_seconds)
    stmt = _epoch_insert(session, trial_id, epoch, values, seconds)
    stmt = stmt.on_conflict_do_update(
        index_elements=["trial_id", "epoch"],
        set_={
            "values": stmt.excluded["values"],
            "seconds": stmt.excluded.seconds,
            "recorded_at": stmt.excluded.recorded_at,
        },
    )
    session.execute(stmt)
    _advance(session, trial_id, owner, epoch)


def _advance(session: Session, trial_id: str, owner: str, epoch: int) -> None:
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.lease_owner == owner)
        .values(epochs_done=case((Trial.epochs_done < epoch, epoch), else_=Trial.epochs_done))
        .execution_options(synchronize_session=False)
    )


def rewind_trial(
    session: Session,
    trial_id: str,
    *,
    owner: str,
    epoch: int,
    lease_seconds: int,
    row: Mapping[str, Any] | None = None,
) -> float:
    """Make ``epoch`` the trial's last stored epoch, under our lease, before an attempt trains
    from there; returns the seconds those epochs took (charged to the time budget).

    Rows past it belong to epochs this attempt trains again, or to an earlier run whose
    checkpoint could not be used: they go, so an attempt that now stops sooner (time budget,
    early stopping, a cancel) leaves none of them in the curves, the report or the export.
    ``row`` is the resume point's own epoch as its checkpoint recorded it: it is stored when
    missing (the worker died after committing the checkpoint, before writing the row), and an
    existing row is left as it is.
    """
    renew_lease(session, trial_id, owner=owner, lease_seconds=lease_seconds)
    session.execute(
        delete(EpochMetric).where(EpochMetric.trial_id == trial_id, EpochMetric.epoch > epoch)
    )
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.lease_owner == owner, Trial.epochs_done > epoch)
        .values(epochs_done=epoch)
        .execution_options(synchronize_session=False)
    )
    if row is not None and epoch > 0:
        values = {k: v for k, v in row.items() if k not in ("epoch", "seconds")}
        seconds = row.get("seconds")
        stmt = _epoch_insert(
            session, trial_id, epoch, values, None if seconds is None else float(seconds)
        )
        session.execute(stmt.on_conflict_do_nothing(index_elements=["trial_id", "epoch"]))
        _advance(session, trial_id, owner, epoch)
    spent = session.scalar(
        select(func.coalesce(func.sum(EpochMetric.seconds), 0.0)).where(
            EpochMetric.trial_id == trial_id
        )
    )
    return float(spent or 0.0)


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities (a diverging loss) become None: JSON, and Postgres, cannot hold them."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }


_FINAL_STATE = frozenset({"status", "error", "trial_hash", *RESULT_COLUMNS})


def finish_trial(session: Session, trial_id: str, *, owner: str | None, **values: Any) -> bool:
    """Write a trial's final state (its status, error, hash and result columns:
    ``core.store.tables.RESULT_COLUMNS``); with an owner, only if we still hold the lease."""
    if unknown := set(values) - _FINAL_STATE:
        raise TypeError(f"finish_trial: not a trial's final state: {sorted(unknown)}")
    values = json_safe(values)
    if "error" in values:
        values["error"] = without_terminal_codes(values["error"])
    if isinstance(values.get("test_metrics"), dict):
        values["test_metrics"] = json_safe(values["test_metrics"])
    stmt = update(Trial).where(Trial.id == trial_id)
    if owner is not None:
        stmt = stmt.where(Trial.lease_owner == owner)
    values.setdefault("finished_at", utcnow())
    result = session.execute(
        stmt.values(lease_owner=None, lease_expires_at=None, **values).execution_options(
            synchronize_session=False
        )
    )
    return bool(rows_changed(result))


def progress_of(session: Session, comparison_ids: list[str]) -> dict[str, dict[str, int]]:
    """Trial counts by state and epochs done, per comparison, in one query."""
    rows = session.execute(
        select(
            Trial.comparison_id,
            Trial.status,
            func.count(),
            func.coalesce(func.sum(Trial.epochs_done), 0),
        )
        .where(Trial.comparison_id.in_(comparison_ids))
        .group_by(Trial.comparison_id, Trial.status)
    ).all()
    out: dict[str, dict[str, int]] = {
        cid: {**{s.value: 0 for s in TrialStatus}, "epochs_done": 0} for cid in comparison_ids
    }
    for cid, status, count, epochs in rows:
        out[cid][status] = out[cid].get(status, 0) + int(count)
        out[cid]["epochs_done"] += int(epochs)
    return out


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def failure_summary(failed: int, *, succeeded: int, ended: int) -> tuple[str, str]:
    """The title and first sentence of a failed comparison's problem, true to the counts:
    what failed, and whether any result is left (none when no trial succeeded)."""
    if succeeded == 0:
        title = "All trials failed" if failed == ended else "No trial succeeded"
        head = (
            ("The only trial failed" if failed == 1 else f"All {failed} trials failed")
            if failed == ended
            else f"{failed} of {_trials(ended)} failed and the rest were cancelled"
        )
        return title, f"{head}; there are no results to report."
    return (
        "Some trials failed",
        f"{failed} of {_trials(ended)} failed; the results of the {_trials(succeeded)} "
        f"that succeeded are kept.",
    )
