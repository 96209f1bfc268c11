"""``/v1/comparisons/{id}/deliveries``: every attempt to deliver the comparison's webhook."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import ComparisonDep, SessionDep
from api.paging import LimitQuery
from api.schemas import Page
from core.store.tables import WebhookDelivery

__all__ = ["DeliveryOut", "router"]

router = APIRouter(prefix="/v1/comparisons", tags=["webhooks"])


class DeliveryOut(BaseModel):
    """One POST to the comparison's ``callback_url``."""

    id: str
    comparison_id: str
    url: str
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    created_at: datetime
    next_attempt_at: datetime | None


@router.get("/{comparison_id}/deliveries", response_model=Page[DeliveryOut])
def deliveries(
    comparison: ComparisonDep, session: SessionDep, limit: LimitQuery = 50
) -> Page[DeliveryOut]:
    """Webhook delivery attempts, oldest first: status code or error, and the next retry."""
    rows = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.comparison_id == comparison.id)
        .order_by(WebhookDelivery.attempt, WebhookDelivery.created_at)
        .limit(limit)
    )
    return Page(
        items=[
            DeliveryOut(
                id=r.id,
                comparison_id=r.comparison_id,
                url=r.url,
                event=r.event,
                attempt=r.attempt,
                status_code=r.status_code,
                error=r.error,
                delivered=r.delivered,
                created_at=r.created_at,
                next_attempt_at=r.next_attempt_at,
            )
            for r in rows
        ],
        next_cursor=None,
    )
