"""The one timestamp format of every answer: RFC 3339 in UTC with a ``Z``.

REST resources (pydantic writes aware datetimes this way), table rows (JSON, CSV), the event
stream, webhooks and uploads all write ``2026-12-03T06:40:17.123456Z``; Parquet stores a UTC
timestamp type. A naive datetime is taken as UTC (SQLite drops the zone; core.store.tables reads it
back aware anyway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["json_default", "rfc3339"]


def rfc3339(value: datetime) -> str:
    """``2026-12-03T06:40:17.123456Z``: UTC, ``T``, ``Z``; microseconds when there are any."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: datetimes as ``rfc3339``; anything else
    that JSON cannot hold as its ``str`` (as ``default=str`` did)."""
    if isinstance(value, datetime):
        return rfc3339(value)
    return str(value)
