"""Opaque keyset cursors for lists.

A cursor is base64 of a JSON list. Clients may send anything, so ``decode_cursor`` checks the
decoded list against the shapes the route issues and converts each part to its typed form
(an ``int`` in 64-bit range, a string without NUL, a timezone-aware ``datetime``, a literal)
before any query runs or any row is streamed: a malformed cursor is a 422 located at
``["query", "cursor"]``, never an error halfway through a response.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query

from core.errors import InvalidInput

__all__ = ["CursorQuery", "LimitQuery", "decode_cursor", "encode_cursor"]

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (at most 500).")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")
]

# One part of a cursor's key: a type to check and convert to, None (must be null), or a
# string that the part must equal (a tag, like "b" and "u" in the datasets list).
Part = type[int] | type[str] | type[datetime] | str | None
INT_RANGE = (-(2**63), 2**63 - 1)  # what SQLite and a Postgres bigint can bind
MAX_STR = 200


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for a position in a list."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _invalid() -> InvalidInput:
    return InvalidInput([{"loc": ["query", "cursor"], "msg": "not a cursor this service issued"}])


def _raw(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        raise _invalid() from None
    if not isinstance(key, list):
        raise _invalid()
    return key


def _part(value: Any, part: Part) -> Any:
    """``value`` converted to ``part``'s form; ValueError when it does not fit."""
    if part is None:
        if value is not None:
            raise ValueError
        return None
    if isinstance(part, str):
        if value != part:
            raise ValueError
        return value
    if part is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise ValueError
        return value
    if not isinstance(value, str) or len(value) > MAX_STR or "\x00" in value:
        raise ValueError
    if part is str:
        return value
    when = datetime.fromisoformat(value)  # ValueError when it is not one
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed out of range by its offset
        raise ValueError from None


def decode_cursor(cursor: str, *shapes: tuple[Part, ...]) -> tuple[Any, ...]:
    """The typed key inside a cursor, matched against ``shapes`` in order; else a 422.

    ``decode_cursor(c, (datetime, str))`` returns ``(datetime, str)``;
    ``decode_cursor(c, ("b", int, None), ("u", datetime, str))`` returns the first that fits.
    """
    key = _raw(cursor)
    for shape in shapes:
        if len(key) != len(shape):
            continue
        try:
            return tuple(_part(v, p) for v, p in zip(key, shape, strict=True))
        except ValueError:
            continue
    raise _invalid()
