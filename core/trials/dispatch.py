"""Dispatch: trials are sent to the queue by one hook, once the transaction that made them
queued has committed.

Whoever makes trials queued in a unit of work records their ids on its session with
``send_after_commit``: the submit path (a new comparison's trials), an adaptive comparison's
next round (``core.trials.finalize``), and the sweeper (trials never sent, re-queued, or whose
message looks lost). The first record installs two listeners on that session (as polar's
``JobQueueManager`` collects jobs in the unit of work and sends them after it commits):

- ``after_commit`` of the outermost transaction sends the ids recorded, one message per trial
  in order, and stamps ``enqueued_at`` of those sent in a transaction of its own;
- the end of an outermost transaction that did not commit (a rollback, a close) forgets them.

So a worker never gets a message for a row it cannot see, and a transaction that rolls back
sends nothing. What is not sent (the broker is down, or the stamp could not be written) keeps
``enqueued_at`` null, and the sweeper sends it on a later pass; a duplicate message is harmless
(the claim drops it). Nothing else calls ``enqueue_trials``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import event, update
from sqlalchemy.orm import Session, SessionTransaction

from core.status import TrialStatus
from core.store.tables import Trial, utcnow
from core.trials.queue import enqueue_trials

__all__ = ["Outbox", "outbox", "send_after_commit"]

log = logging.getLogger("archbench.dispatch")

OUTBOX = "archbench.outbox"  # session.info key of the session's Outbox


@dataclass
class Outbox:
    """The trials a session will send when it commits, and what its commits sent.

    ``app`` is the Celery app to send with (None: ``core.trials.queue.client_app``);
    ``committed`` the ids its commits handed over, ``sent`` those the broker took."""

    app: Celery | None = None
    pending: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)


def outbox(session: Session, app: Celery | None = None) -> Outbox:
    """The session's outbox, created (with its listeners) on first use; ``app`` sets the
    Celery app its commits send with."""
    box = session.info.get(OUTBOX)
    if not isinstance(box, Outbox):
        box = Outbox()
        session.info[OUTBOX] = box
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    if app is not None:
        box.app = app
    return box


def send_after_commit(session: Session, trial_ids: list[str]) -> None:
    """Send these trials once the session's transaction commits (each once, in order)."""
    box = outbox(session)
    box.pending = list(dict.fromkeys([*box.pending, *trial_ids]))


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released: the outer transaction may still roll back
    box = session.info.get(OUTBOX)
    if not isinstance(box, Outbox) or not box.pending:
        return
    ids, box.pending = box.pending, []
    box.committed += ids
    box.sent += _send(session, ids, box.app)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    box = session.info.get(OUTBOX)
    if transaction.parent is None and isinstance(box, Outbox) and box.pending:
        # Reached only when the outermost transaction did not commit (after_commit empties
        # the list first): its trials may not exist, so nothing is sent.
        box.pending = []


def _send(session: Session, trial_ids: list[str], app: Celery | None) -> list[str]:
    """Send one message per trial, in order, and stamp ``enqueued_at`` of those sent that are
    still queued (one that a worker already started needs none); returns the ids sent.

    Called inside ``commit``, after the database committed: the stamp is one UPDATE in a
    transaction of its own on the same database, which locks its rows in the plan's order
    (see core/trials/lifecycle.py on lock order). A failure is logged, not raised: the
    commit it follows stands, and the sweeper sends what is not stamped."""
    sent = enqueue_trials(trial_ids, app=app)
    if not sent:
        return []
    try:
        with Session(session.get_bind()) as s, s.begin():
            s.execute(
                update(Trial)
                .where(Trial.id.in_(sent), Trial.status == TrialStatus.QUEUED)
                .values(enqueued_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    except Exception as exc:
        log.warning("sent %d trials but could not stamp them sent: %s", len(sent), exc)
    return sent
