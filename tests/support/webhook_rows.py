"""Rows for webhook tests: a finished comparison with a callback, and its stored deliveries."""

from __future__ import annotations

from sqlalchemy import insert, select

from core.store.tables import Comparison, WebhookDelivery, new_id, utcnow
from tests.support.helpers import stored_spec


def finished(callback_url: str) -> str:
    """A succeeded comparison whose webhook (``callback_url``) is due; returns its id."""
    from core.store.db import session_scope

    cid, now = new_id(), utcnow()
    with session_scope() as s:
        s.execute(
            insert(Comparison).values(
                id=cid,
                tenant="default",
                name="hook",
                status="succeeded",
                spec=stored_spec(callback_url=callback_url),
                analyses={},
                created_at=now,
                finished_at=now,
                trials_total=0,
                epochs_total=0,
                cancel_requested=False,
            )
        )
    return cid


def deliveries(cid: str) -> list[WebhookDelivery]:
    """The comparison's delivery rows, detached from their session."""
    from core.store.db import session_scope

    with session_scope() as s:
        rows = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.comparison_id == cid)))
        for r in rows:
            s.expunge(r)
        return rows
