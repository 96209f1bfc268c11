"""Opaque keyset cursors for lists."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Query

from core.errors import InvalidInput

__all__ = ["CursorQuery", "LimitQuery", "decode_cursor", "encode_cursor"]

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (at most 500).")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")
]


def encode_cursor(*key: Any) -> str:
    """An opaque cursor for a position in a list."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The key inside a cursor, or a 422 located at the cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != arity:
            raise ValueError
        return key
    except ValueError:
        raise InvalidInput(
            [{"loc": ["query", "cursor"], "msg": "not a cursor this service issued"}]
        ) from None
