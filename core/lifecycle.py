"""State transitions of trials and comparisons, each one guarded SQL statement.

Every write a worker makes is guarded by the lease it holds (``lease_owner``), so a worker
that lost its trial to the sweeper cannot overwrite the new owner's results.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.tables import ACTIVE_TRIAL_STATES, Comparison, EpochMetric, Trial, utcnow

__all__ = [
    "LeaseLost",
    "claim_trial",
    "finalize_comparison",
    "finish_trial",
    "json_safe",
    "progress_of",
    "renew_lease",
    "rewind_trial",
    "upsert_epoch",
]


class LeaseLost(Exception):
    """This worker no longer owns the trial (its lease expired and another took it)."""


def claim_trial(
    session: Session, trial_id: str, *, owner: str, worker: str, lease_seconds: int
) -> bool:
    """Atomically take a queued trial (or one whose lease expired); False if not ours to run."""
    now = utcnow()
    result = session.execute(
        update(Trial)
        .where(
            Trial.id == trial_id,
            or_(
                Trial.status == "queued",
                and_(Trial.status == "running", Trial.lease_expires_at < now),
            ),
        )
        .values(
            status="running",
            attempts=Trial.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Trial.started_at, now),
            worker=worker,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = bool(result.rowcount)  # type: ignore[attr-defined]
    if claimed:
        comparison_id = session.scalar(select(Trial.comparison_id).where(Trial.id == trial_id))
        session.execute(
            update(Comparison)
            .where(Comparison.id == comparison_id, Comparison.status == "queued")
            .values(status="running", started_at=now)
            .execution_options(synchronize_session=False)
        )
    return claimed


def renew_lease(session: Session, trial_id: str, *, owner: str, lease_seconds: int) -> None:
    """Extend our lease; raise LeaseLost when the trial is no longer ours."""
    result = session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.lease_owner == owner, Trial.status == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLost(trial_id)


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
    values = json_safe(values)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = {
        "trial_id": trial_id,
        "epoch": epoch,
        "values": values,
        "seconds": seconds,
        "recorded_at": utcnow(),
    }
    stmt = insert(EpochMetric).values(**row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["trial_id", "epoch"],
        set_={
            "values": stmt.excluded["values"],
            "seconds": stmt.excluded.seconds,
            "recorded_at": stmt.excluded.recorded_at,
        },
    )
    session.execute(stmt)
    session.execute(
        update(Trial)
        .where(Trial.id == trial_id, Trial.lease_owner == owner)
        .values(epochs_done=case((Trial.epochs_done < epoch, epoch), else_=Trial.epochs_done))
        .execution_options(synchronize_session=False)
    )


def rewind_trial(
    session: Session, trial_id: str, *, owner: str, epoch: int, lease_seconds: int
) -> float:
    """Make ``epoch`` the trial's last stored epoch, under our lease, before an attempt trains
    from there; returns the seconds those epochs took (charged to the time budget).

    Rows past it belong to epochs this attempt trains again, or to an earlier run whose
    checkpoint could not be used: they go, so an attempt that now stops sooner (time budget,
    early stopping, a cancel) leaves none of them in the curves, the report or the export.
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


def finish_trial(session: Session, trial_id: str, *, owner: str | None, **values: Any) -> bool:
    """Write a trial's final state; with an owner, only if we still hold the lease."""
    values = json_safe(values)
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
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
        cid: {
            "succeeded": 0,
            "failed": 0,
            "running": 0,
            "queued": 0,
            "cancelled": 0,
            "epochs_done": 0,
        }
        for cid in comparison_ids
    }
    for cid, status, count, epochs in rows:
        out[cid][status] = out[cid].get(status, 0) + int(count)
        out[cid]["epochs_done"] += int(epochs)
    return out


def finalize_comparison(session: Session, comparison_id: str) -> str | None:
    """Mark the comparison finished if no trial is active; returns its final status or None."""
    counts = progress_of(session, [comparison_id])[comparison_id]
    if any(counts[s] for s in ACTIVE_TRIAL_STATES):
        return None
    comparison = session.get(Comparison, comparison_id)
    if comparison is None or comparison.status not in ("queued", "running"):
        return None
    error: dict[str, Any] | None = None
    if comparison.cancel_requested:
        status = "cancelled"
    elif counts["failed"]:
        status = "failed"
        first = session.scalar(
            select(Trial)
            .where(Trial.comparison_id == comparison_id, Trial.status == "failed")
            .order_by(Trial.variant_index, Trial.seed)
            .limit(1)
        )
        ended = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        where = f"{first.variant}, seed {first.seed}" if first else "?"
        first_detail = (first.error or {}).get("detail", "") if first else ""
        error = {
            "type": "https://archbench.dev/problems/trials-failed",
            "title": "Some trials failed",
            "status": 500,
            "detail": f"{counts['failed']} of {ended} trials failed; the others' results are "
            f"kept. First failure ({where}): {first_detail}",
        }
    else:
        status = "succeeded"
    result = session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, Comparison.status.in_(("queued", "running")))
        .values(status=status, finished_at=utcnow(), error=error)
        .execution_options(synchronize_session=False)
    )
    return status if result.rowcount else None  # type: ignore[attr-defined]
