"""Webhooks: when a comparison with a ``callback_url`` ends, POST its outcome there, signed.

Delivery is driven from the database, never from memory, so a crash loses nothing: every
worker's main process runs ``deliver_due`` every ``webhook_poll_seconds`` (see
``worker.celery_app``). It finds ended comparisons whose callback has not been delivered and
whose next attempt is due, takes a row lock on the comparison (``SKIP LOCKED``, so several
workers never send the same attempt) and records the attempt in ``webhook_deliveries`` as
under way, commits, then POSTs outside any transaction (a slow receiver holds no lock: see
``core.trials.posting`` for the bounds on time and answer size) and records the outcome.
A failed attempt (no answer, or not 2xx) is retried after
``webhook_backoff_seconds`` doubled each time (capped), up to ``webhook_max_attempts``.
Receivers may see a delivery twice (at least once); ``X-Archbench-Delivery`` and the
comparison id in the body let them drop repeats.

Signature: ``X-Archbench-Signature: sha256=<hex>``, the HMAC-SHA256 under
``ARCHBENCH_WEBHOOK_SECRET`` of ``<X-Archbench-Timestamp> + "." + <raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.report.stored import stored_report
from core.status import TERMINAL
from core.store.db import session_scope
from core.store.tables import Comparison, WebhookDelivery, utcnow
from core.timestamps import rfc3339
from core.trials.destinations import Refused, allows_private, resolve_public
from core.trials.posting import Answer, Sender

__all__ = ["EVENT", "backoff", "deliver_due", "payload", "sign"]

log = logging.getLogger("archbench.webhooks")

EVENT = "comparison_finished"
WINDOW = timedelta(days=7)  # comparisons that ended longer ago are not looked at again
LEASE_MARGIN_SECONDS = 60  # past the delivery's limit, before an unrecorded attempt is retried


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` HMAC-SHA256 of ``timestamp + "." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(settings: Settings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    base = settings.webhook_backoff_seconds * 2 ** max(0, attempt - 1)
    return float(min(base, settings.webhook_backoff_max_seconds))


def payload(session: Session, comparison: Comparison, settings: Settings) -> dict[str, Any]:
    """The body sent for an ended comparison: status, links, the verdict (the stored report)."""
    link = f"{settings.public_url.rstrip('/')}/v1/comparisons/{comparison.id}"
    body: dict[str, Any] = {
        "event": EVENT,
        "comparison_id": comparison.id,
        "name": comparison.name,
        "status": comparison.status,
        "finished_at": rfc3339(comparison.finished_at) if comparison.finished_at else None,
        "link": link,
        "report_link": f"{link}/report",
        "error": comparison.error,
        "verdict": None,
        "ranking": [],
    }
    try:
        # As stored by the worker that ended the comparison. Under _claim's row lock a stale
        # one is computed but not stored: the write would wait for that lock.
        report = stored_report(comparison.id, store=False).report
        body["verdict"] = report.get("verdict")
        body["ranking"] = report.get("ranking", [])
    except Exception:  # the report must never stop the notification
        log.exception("report of %s failed; the webhook goes without a verdict", comparison.id)
    return body


def _due(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Ended comparisons with a callback_url that still owe a delivery attempt now."""
    wd = WebhookDelivery
    agg = (
        select(
            wd.comparison_id.label("cid"),
            func.max(wd.attempt).label("n"),
            func.max(wd.next_attempt_at).label("next_at"),
            func.max(case((wd.delivered.is_(True), 1), else_=0)).label("ok"),
        )
        .group_by(wd.comparison_id)
        .subquery()
    )
    url = Comparison.spec["callback_url"].as_string()
    q = (
        select(Comparison.id)
        .outerjoin(agg, agg.c.cid == Comparison.id)
        .where(
            Comparison.status.in_(TERMINAL),
            Comparison.finished_at >= now - WINDOW,
            url.is_not(None),
            or_(
                agg.c.n.is_(None),
                and_(
                    agg.c.ok == 0,
                    agg.c.n < settings.webhook_max_attempts,
                    agg.c.next_at <= now,
                ),
            ),
        )
        .order_by(Comparison.finished_at)
        .limit(100)
    )
    return list(session.scalars(q))


@dataclass(frozen=True)
class _Claim:
    """An attempt taken and recorded as under way: what to send, and where to note the outcome."""

    row_id: str
    comparison_id: str
    attempt: int
    url: str
    body: bytes


IN_FLIGHT = "no outcome yet: the delivery is under way (or its worker stopped during it)"


def _claim(settings: Settings, comparison_id: str) -> _Claim | None:
    """Take the next attempt for one comparison, under a row lock held only for this short
    transaction; None if not ours or not due. The attempt's row is committed with
    ``next_attempt_at`` past the delivery's time limit, so no other worker takes the
    comparison while it is being sent, and one that died mid-delivery is retried after."""
    now = utcnow()
    with session_scope() as s:
        locked = s.scalar(
            select(Comparison)
            .where(Comparison.id == comparison_id)
            .with_for_update(skip_locked=True)
        )
        if locked is None or not locked.spec.callback_url:
            return None
        rows = list(
            s.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.comparison_id == comparison_id)
                .order_by(WebhookDelivery.attempt)
            )
        )
        if any(r.delivered for r in rows) or len(rows) >= settings.webhook_max_attempts:
            return None
        if rows and (rows[-1].next_attempt_at is None or rows[-1].next_attempt_at > now):
            return None
        url = locked.spec.callback_url
        body = json.dumps(
            payload(s, locked, settings), sort_keys=True, separators=(",", ":"), default=str
        ).encode()
        attempt = (rows[-1].attempt if rows else 0) + 1
        lease = timedelta(seconds=settings.webhook_delivery_limit_seconds + LEASE_MARGIN_SECONDS)
        row = WebhookDelivery(
            comparison_id=comparison_id,
            url=url,
            attempt=attempt,
            event=EVENT,
            error=IN_FLIGHT,
            next_attempt_at=now + lease,
        )
        s.add(row)
        s.flush()
        return _Claim(row.id, comparison_id, attempt, url, body)


def _send(settings: Settings, claim: _Claim, sender: Sender) -> tuple[Answer | None, str | None]:
    """POST the claimed attempt, outside any transaction: the answer, or why there is none."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "archbench-webhooks/1",
        "X-Archbench-Event": EVENT,
        "X-Archbench-Delivery": claim.row_id,
        "X-Archbench-Timestamp": timestamp,
        "X-Archbench-Signature": sign(settings.webhook_secret, timestamp, claim.body),
    }
    try:
        target, extensions = claim.url, {}
        if not allows_private(settings):
            # POST to the address that was checked; the name goes as Host and TLS name.
            target, host = resolve_public(claim.url)
            headers["Host"] = urlsplit(claim.url).netloc.rpartition("@")[2]
            extensions = {"sni_hostname": host}
        return sender.post(target, claim.body, headers, extensions), None
    except Refused as exc:
        return None, f"refused: {exc} (ARCHBENCH_WEBHOOK_ALLOW_PRIVATE is off)"
    except (httpx.HTTPError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


def _attempt(settings: Settings, comparison_id: str, sender: Sender) -> dict[str, Any] | None:
    """Claim, send and record the next attempt for one comparison; None if not ours or not due."""
    claim = _claim(settings, comparison_id)
    if claim is None:
        return None
    answer, error = _send(settings, claim, sender)
    delivered = answer is not None and 200 <= answer.status_code < 300
    if answer is not None and not delivered:
        error = f"HTTP {answer.status_code}: {answer.excerpt}".rstrip(": ")
    retry = not delivered and not (error or "").startswith("refused:")  # refused: same answer
    with session_scope() as s:
        row = s.get(WebhookDelivery, claim.row_id)
        if row is not None:
            row.status_code = answer.status_code if answer is not None else None
            row.delivered = delivered
            row.error = None if delivered else error
            row.next_attempt_at = (
                utcnow() + timedelta(seconds=backoff(settings, claim.attempt))
                if retry and claim.attempt < settings.webhook_max_attempts
                else None
            )
    log.log(
        logging.INFO if delivered else logging.WARNING,
        "webhook %s attempt %d to %s: %s",
        comparison_id,
        claim.attempt,
        claim.url,
        answer.status_code if delivered and answer is not None else error,
    )
    return {"comparison_id": comparison_id, "attempt": claim.attempt, "delivered": delivered}


def deliver_due(settings: Settings) -> list[dict[str, Any]]:
    """One pass: make every delivery attempt that is due now; returns what was attempted."""
    if not settings.webhook_secret:
        return []
    with session_scope() as s:
        due = _due(s, settings, utcnow())
    if not due:
        return []
    with Sender(
        timeout=settings.webhook_timeout_seconds, limit=settings.webhook_delivery_limit_seconds
    ) as sender:
        done = [_attempt(settings, cid, sender) for cid in due]
    return [d for d in done if d is not None]
