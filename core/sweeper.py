"""The sweeper: finds work whose message was lost or whose worker died, and puts it back.

It runs as a thread in every worker's main process (see ``worker.celery_app``), every
``sweep_seconds``. Each step is a guarded UPDATE, so several sweepers at once are harmless:

- a ``running`` trial whose lease expired (its worker died or hung) goes back to ``queued``
  and is enqueued again, or is marked ``failed`` once it used ``max_attempts``;
- a ``queued`` trial that was never enqueued (the broker was down when it was accepted) is
  enqueued; so is every ``queued`` trial when the broker may have lost their messages (a Redis
  restarted without persistence, or a restarted embedded worker: ``broker_was_reset``);
- a comparison whose trials have all ended but which is still open is finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery
from sqlalchemy import select, update

from core.config import Settings
from core.db import session_scope
from core.lifecycle import finalize_comparison
from core.queue import broker_was_reset, enqueue_trials
from core.tables import Comparison, Trial, utcnow

__all__ = ["SweepResult", "sweep"]

log = logging.getLogger("archbench.sweeper")

NEVER_ENQUEUED_GRACE = timedelta(seconds=5)


@dataclass
class SweepResult:
    """What one sweep did."""

    requeued: list[str] = field(default_factory=list)
    resent: int = 0
    failed: list[str] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)


def sweep(settings: Settings, app: Celery | None = None) -> SweepResult:
    """One pass of the sweeper."""
    result = SweepResult()
    now = utcnow()
    with session_scope() as s:
        expired = s.execute(
            select(Trial.id, Trial.attempts).where(
                Trial.status == "running", Trial.lease_expires_at < now
            )
        ).all()
        for trial_id, attempts in expired:
            guard = (Trial.id == trial_id, Trial.status == "running", Trial.lease_expires_at < now)
            if attempts >= settings.max_attempts:
                values: dict[str, object] = {
                    "status": "failed",
                    "finished_at": now,
                    "error": {
                        "type": "https://archbench.dev/problems/attempts-exhausted",
                        "title": "Trial failed",
                        "status": 500,
                        "detail": f"the worker running this trial stopped answering "
                        f"{attempts} times (attempt limit {settings.max_attempts})",
                    },
                }
                bucket = result.failed
            else:
                values = {"status": "queued", "enqueued_at": None}
                bucket = result.requeued
            done = s.execute(
                update(Trial)
                .where(*guard)
                .values(lease_owner=None, lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                bucket.append(trial_id)
    if result.requeued or result.failed:
        log.warning("lease expired: requeued %s, failed %s", result.requeued, result.failed)

    if broker_was_reset(settings.broker_url):
        with session_scope() as s:
            reset = s.execute(
                update(Trial)
                .where(Trial.status == "queued", Trial.enqueued_at.is_not(None))
                .values(enqueued_at=None)
                .execution_options(synchronize_session=False)
            )
            result.resent = int(reset.rowcount)  # type: ignore[attr-defined]
        if result.resent:
            log.warning("messages may be lost; sending %d queued trials again", result.resent)

    with session_scope() as s:
        pending = list(
            s.scalars(
                select(Trial.id).where(
                    Trial.status == "queued",
                    Trial.enqueued_at.is_(None),
                    Trial.created_at < now - NEVER_ENQUEUED_GRACE,
                )
            )
        )
        pending += [t for t in result.requeued if t not in pending]
    if pending:
        sent = enqueue_trials(pending, app=app)
        if sent:
            with session_scope() as s:
                s.execute(
                    update(Trial)
                    .where(Trial.id.in_(sent))
                    .values(enqueued_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        result.enqueued = sent

    with session_scope() as s:
        open_ids = list(
            s.scalars(select(Comparison.id).where(Comparison.status.in_(("queued", "running"))))
        )
    for comparison_id in open_ids:
        with session_scope() as s:
            if finalize_comparison(s, comparison_id):
                result.finalized.append(comparison_id)
    return result
