"""The sweeper: finds work whose message was lost or whose worker died, and puts it back.

It runs as a thread in every worker's main process (see ``worker.celery_app``), every
``sweep_seconds``. Each step is a guarded UPDATE, so several sweepers at once are harmless:

- a ``running`` trial whose lease expired (its worker died or hung) goes back to ``queued``
  and is enqueued again, or is marked ``failed`` once it used ``max_attempts``, or
  ``cancelled`` when its comparison was cancelled (nobody else would end it);
- a ``queued`` trial that was never enqueued (the broker was down when it was accepted) is
  enqueued; so is every ``queued`` trial when the broker may have lost their messages (a Redis
  restarted without persistence, or a restarted embedded worker: ``broker_was_reset``);
- a ``queued`` trial whose message went missing (say, a worker's claim met a database
  outage and its message was acked or lost anyway) is sent again: one sent over
  ``resend_queued_seconds`` ago while worker processes sit idle (see ``lost_messages``);
- a comparison whose trials have all ended but which is still open is finished, or, with
  adaptive seeds, gets its next round (a decision its worker did not live to take);
- a checkpoint folder (``CHECKPOINT_DIR/<trial id>``) whose trial has ended, or no longer
  exists, is deleted: the sweeper of a worker sees the shared folder and removes what a
  sweeper without it (the api host's) or a cancel in the api left behind;
- stored analysis rows (predictions, Grams) that no trial refers to any more, their trial and
  every trial reusing them having been deleted, are removed (``core.trials.reuse``).

Lease expiry is judged on the database's clock (``core.trials.lifecycle.db_now``), like the leases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from core.status import ACTIVE, TERMINAL, StopReason, TrialStatus
from core.store.checkpoints import remove_checkpoint, trial_folders
from core.store.db import rows_changed, session_scope
from core.store.tables import Comparison, Trial, WorkerHeartbeat, utcnow
from core.trials.dispatch import outbox, send_after_commit
from core.trials.finalize import finalize_comparison
from core.trials.lifecycle import (
    attempts_exhausted,
    db_now,
    end_unclaimed,
    requeue_expired,
)
from core.trials.queue import broker_was_reset
from core.trials.reuse import collect_unreferenced

__all__ = ["SweepResult", "sweep"]

log = logging.getLogger("archbench.sweeper")

NEVER_ENQUEUED_GRACE = timedelta(seconds=5)
HEARTBEAT_GRACE = timedelta(seconds=60)  # a worker heard from this recently is alive, at least


@dataclass
class SweepResult:
    """What one sweep did."""

    requeued: list[str] = field(default_factory=list)
    resent: int = 0
    resent_lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    rounds_added: list[str] = field(default_factory=list)
    checkpoints_removed: list[str] = field(default_factory=list)
    analysis_rows_removed: int = 0


def sweep(settings: Settings, app: Celery | None = None) -> SweepResult:
    """One pass of the sweeper: expired leases, a reset broker, messages never sent or lost,
    decisions a worker did not take, then the files and rows nothing refers to."""
    result = SweepResult()
    now = utcnow()
    _end_expired_leases(settings, result)
    if broker_was_reset(settings.broker_url):
        _forget_sent_messages(result)
    _send_pending(settings, app, now, result)
    _finalize_open(app, result)
    result.checkpoints_removed = remove_ended_checkpoints(settings)
    with session_scope() as s:
        result.analysis_rows_removed = collect_unreferenced(s)
    return result


def _end_expired_leases(settings: Settings, result: SweepResult) -> None:
    """Requeue, fail (attempts used up) or cancel every running trial whose lease expired."""
    with session_scope() as s:
        expired = s.execute(
            select(Trial.id, Trial.attempts, Comparison.cancel_requested)
            .join(Comparison, Comparison.id == Trial.comparison_id)
            .where(Trial.status == TrialStatus.RUNNING, Trial.lease_expires_at < db_now(s))
            .order_by(Trial.id)  # rows locked in id order, as everywhere (core.trials.lifecycle)
        ).all()
        for trial_id, attempts, cancel_requested in expired:
            # Each step is guarded (still nobody's), so a worker or sweeper that got there
            # first wins and this one does nothing.
            if cancel_requested:
                if end_unclaimed(
                    s, trial_id, status=TrialStatus.CANCELLED, stop_reason=StopReason.CANCELLED
                ):
                    result.cancelled.append(trial_id)
            elif attempts >= settings.max_attempts:
                if end_unclaimed(
                    s,
                    trial_id,
                    status=TrialStatus.FAILED,
                    min_attempts=settings.max_attempts,
                    error=attempts_exhausted(attempts, settings.max_attempts),
                ):
                    result.failed.append(trial_id)
            elif requeue_expired(s, trial_id):
                result.requeued.append(trial_id)
    if result.requeued or result.failed or result.cancelled:
        log.warning(
            "lease expired: requeued %s, failed %s, cancelled %s",
            result.requeued,
            result.failed,
            result.cancelled,
        )
    for trial_id in (*result.failed, *result.cancelled):
        remove_checkpoint(settings, trial_id)


def _forget_sent_messages(result: SweepResult) -> None:
    """The broker lost its queue: every queued trial counts as never sent."""
    with session_scope() as s:
        reset = s.execute(
            update(Trial)
            .where(Trial.status == TrialStatus.QUEUED, Trial.enqueued_at.is_not(None))
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )
        result.resent = rows_changed(reset)
    if result.resent:
        log.warning("messages may be lost; sending %d queued trials again", result.resent)


def _send_pending(
    settings: Settings, app: Celery | None, now: datetime, result: SweepResult
) -> None:
    """Send the queued trials never sent (past a grace), the requeued ones and those whose
    message looks lost, after this (reading) transaction commits."""
    with session_scope() as s:
        box = outbox(s, app=app)
        pending = list(
            s.scalars(
                select(Trial.id)
                .where(
                    Trial.status == TrialStatus.QUEUED,
                    Trial.enqueued_at.is_(None),
                    Trial.created_at < now - NEVER_ENQUEUED_GRACE,
                )
                # Queue order: seed-major, the variants interleaved (core.trials.comparisons).
                .order_by(Trial.created_at, Trial.comparison_id, Trial.seed, Trial.variant_index)
            )
        )
        pending += [t for t in result.requeued if t not in pending]
        result.resent_lost = [t for t in lost_messages(s, settings, now) if t not in pending]
        pending += result.resent_lost
        send_after_commit(s, pending)
    result.enqueued = list(box.sent)
    if result.resent_lost:
        log.warning(
            "queued trials whose message looks lost (idle workers): sending %s again",
            [t for t in result.resent_lost if t in box.sent],
        )


def _finalize_open(app: Celery | None, result: SweepResult) -> None:
    """Take every open comparison's decision a worker did not (it died first): end it, or add
    its next round or tuning step, sent when that transaction commits."""
    with session_scope() as s:
        open_ids = list(s.scalars(select(Comparison.id).where(Comparison.status.in_(ACTIVE))))
    for comparison_id in open_ids:
        with session_scope() as s:
            box = outbox(s, app=app)
            if finalize_comparison(s, comparison_id):
                result.finalized.append(comparison_id)
        if box.committed:
            result.rounds_added.append(comparison_id)
            result.enqueued += box.sent


def lost_messages(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Queued trials whose message looks lost, to send again: oldest first, one per idle
    worker process at most.

    A trial queued for a long time is normal behind busy workers, so age alone proves
    nothing; but a worker process with no trial takes the next message within milliseconds,
    so a trial sent over ``resend_queued_seconds`` ago that is still queued while processes
    sit idle has no message left. The re-send stamps ``enqueued_at`` anew, so each trial is
    sent at most once per window; a duplicate message is harmless (the claim drops it).
    Capacity is the concurrency of workers whose heartbeat is recent; busy processes are
    the running trials under a live lease.
    """
    heard = max(timedelta(seconds=3 * settings.worker_heartbeat_seconds), HEARTBEAT_GRACE)
    capacity = session.scalar(
        select(func.coalesce(func.sum(WorkerHeartbeat.concurrency), 0)).where(
            WorkerHeartbeat.last_seen >= now - heard
        )
    )
    busy = session.scalar(
        select(func.count())
        .select_from(Trial)
        .where(Trial.status == TrialStatus.RUNNING, Trial.lease_expires_at >= db_now(session))
    )
    idle = int(capacity or 0) - int(busy or 0)
    if idle <= 0:
        return []
    return list(
        session.scalars(
            select(Trial.id)
            .where(
                Trial.status == TrialStatus.QUEUED,
                Trial.enqueued_at < now - timedelta(seconds=settings.resend_queued_seconds),
            )
            .order_by(Trial.enqueued_at, Trial.id)
            .limit(idle)
        )
    )


def remove_ended_checkpoints(settings: Settings) -> list[str]:
    """Delete the checkpoint folders of trials that ended or no longer exist; returns their ids.

    Only folders named by a trial id are considered; a checkpoint folder must belong to one
    database (two deployments sharing one would delete each other's).
    """
    names = trial_folders(settings)
    if not names:
        return []
    with session_scope() as s:
        status = dict(
            s.execute(select(Trial.id, Trial.status).where(Trial.id.in_(names))).tuples().all()
        )
    gone = [n for n in names if status.get(n, "deleted") in (*TERMINAL, "deleted")]
    for name in gone:
        remove_checkpoint(settings, name)
    if gone:
        log.info("removed the checkpoints of %d ended trials", len(gone))
    return gone
