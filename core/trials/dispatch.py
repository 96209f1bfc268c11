"""Dispatch: send trials to the queue and stamp the ones sent, the one way everyone does it.

The submit route (a new comparison's trials), the sweeper (never sent, re-queued, or whose
message looks lost) and an adaptive comparison's next round (``core.trials.rounds``) all call
``dispatch``. Always after the transaction that made the trials queued has committed, so a
worker never gets a message for a row it cannot see. What is not sent (the broker is down)
keeps ``enqueued_at`` null, and the sweeper sends it on a later pass.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from core.status import TrialStatus
from core.store.db import session_scope
from core.store.tables import Trial, utcnow
from core.trials.queue import enqueue_trials

__all__ = ["dispatch"]


def dispatch(trial_ids: list[str], app: Any = None) -> list[str]:
    """Send one message per trial, in order, and stamp ``enqueued_at`` of those sent that are
    still queued (one that a worker already started needs none); returns the ids sent.

    The stamp is one UPDATE in a transaction of its own, which locks its rows in the plan's
    order (see core/trials/lifecycle.py on lock order)."""
    if not trial_ids:
        return []
    sent = enqueue_trials(trial_ids, app=app)
    if sent:
        with session_scope() as s:
            s.execute(
                update(Trial)
                .where(Trial.id.in_(sent), Trial.status == TrialStatus.QUEUED)
                .values(enqueued_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    return sent
