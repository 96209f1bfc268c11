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

Tenants share the workers fairly: of the trials recorded, ``_send`` sends a tenant's unsent
ones only up to its free share, ``dispatch_per_tenant`` (``core.config``) less its trials
already sent and not yet claimed (``within_share``); the rest keep ``enqueued_at`` null. When
a worker claims (or ends unclaimed) one of a tenant's trials, that transaction records the
tenant's next unsent trials (``top_up``: oldest comparison first, queue order), so a broker
holds a few trials per tenant, and a newcomer's trial waits behind those few rather than
behind another tenant's whole backlog. The sweeper's pass over unsent trials goes through the
same cap. A re-send (a trial already stamped) is never held back. Two commits at once may
each see the same free share, so a tenant may briefly have a few more in the broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, SessionTransaction

from core.config import get_settings
from core.status import TrialStatus
from core.store.tables import Comparison, Trial, utcnow
from core.trials.queue import enqueue_trials

__all__ = ["Outbox", "outbox", "send_after_commit", "top_up", "within_share"]

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
    try:
        with Session(session.get_bind()) as s:
            trial_ids = within_share(s, trial_ids, get_settings().dispatch_per_tenant)
    except Exception as exc:
        log.warning("could not read the tenants' shares; sending nothing now: %s", exc)
        return []
    sent = enqueue_trials(trial_ids, app=app) if trial_ids else []
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


_CHUNK = 1000  # ids per IN list (SQLite allows some 32k bound values, Postgres 65k)


def within_share(session: Session, trial_ids: list[str], cap: int) -> list[str]:
    """The ids to send now, in order: every id that is not an unsent queued trial (a re-send,
    or one the claim will drop), and of each tenant's unsent queued trials the first
    ``cap`` less its trials sent and not yet claimed. ``cap`` 0: all of them."""
    if cap <= 0 or not trial_ids:
        return list(trial_ids)
    tenant_of: dict[str, str] = {}
    for start in range(0, len(trial_ids), _CHUNK):
        rows = session.execute(
            select(Trial.id, Comparison.tenant)
            .join(Comparison, Comparison.id == Trial.comparison_id)
            .where(
                Trial.id.in_(trial_ids[start : start + _CHUNK]),
                Trial.status == TrialStatus.QUEUED,
                Trial.enqueued_at.is_(None),
            )
        ).all()
        tenant_of.update({trial_id: tenant for trial_id, tenant in rows})
    tenants = sorted(set(tenant_of.values()))
    in_broker: dict[str, int] = {}
    if tenants:
        counted = session.execute(
            select(Comparison.tenant, func.count())
            .join(Trial, Trial.comparison_id == Comparison.id)
            .where(
                Comparison.tenant.in_(tenants),
                Trial.status == TrialStatus.QUEUED,
                Trial.enqueued_at.is_not(None),
            )
            .group_by(Comparison.tenant)
        ).all()
        in_broker = {tenant: int(n) for tenant, n in counted}
    free = {tenant: cap - in_broker.get(tenant, 0) for tenant in tenants}
    chosen: list[str] = []
    for trial_id in trial_ids:
        tenant = tenant_of.get(trial_id)
        if tenant is None:
            chosen.append(trial_id)
        elif free[tenant] > 0:
            free[tenant] -= 1
            chosen.append(trial_id)
    return chosen


def top_up(session: Session, tenant: str) -> list[str]:
    """Record for the after-commit send the tenant's next unsent queued trials (oldest
    comparison first, then queue order: seed-major, variants interleaved), as many as its
    share; called in the transaction that claims or ends one of its trials. The send takes
    only what is free then (``within_share``). Returns the ids recorded."""
    cap = get_settings().dispatch_per_tenant
    if cap <= 0:
        return []
    ids = list(
        session.scalars(
            select(Trial.id)
            .join(Comparison, Comparison.id == Trial.comparison_id)
            .where(
                Comparison.tenant == tenant,
                Trial.status == TrialStatus.QUEUED,
                Trial.enqueued_at.is_(None),
            )
            .order_by(
                Comparison.created_at,
                Comparison.id,
                Trial.created_at,
                Trial.seed,
                Trial.variant_index,
            )
            .limit(cap)
        )
    )
    if ids:
        send_after_commit(session, ids)
    return ids
