"""api.paging: a cursor decodes to its typed key, and anything else is a 422 at ``cursor``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from api.paging import decode_cursor, encode_cursor
from core.errors import InvalidInput

LIST = (datetime, str)
TRIALS = (int, int)
DATASETS = (("b", int, None), ("u", datetime, str))


def raw(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_round_trips_to_typed_keys() -> None:
    when = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert decode_cursor(encode_cursor(when.isoformat(), "id-1"), LIST) == (when, "id-1")
    assert decode_cursor(encode_cursor(2, 7), TRIALS) == (2, 7)
    assert decode_cursor(encode_cursor("b", 4, None), *DATASETS) == ("b", 4, None)
    assert decode_cursor(encode_cursor("u", when.isoformat(), "x"), *DATASETS) == ("u", when, "x")


def test_datetimes_come_back_in_utc() -> None:
    plus2 = datetime(2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    (when, _) = decode_cursor(encode_cursor(plus2.isoformat(), "a"), LIST)
    assert when.tzinfo == UTC
    assert when == plus2
    (naive, _) = decode_cursor(encode_cursor("2025-03-01T12:30:00", "a"), LIST)
    assert naive == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


BAD = [
    ("not base64", "%%%", TRIALS),
    ("not ascii", "é", TRIALS),
    ("not json", base64.urlsafe_b64encode(b"{nope").decode(), TRIALS),
    ("not utf-8", base64.urlsafe_b64encode(b"\xff\xfe").decode(), TRIALS),
    ("an object", raw({"a": 1}), TRIALS),
    ("too short", raw([1]), TRIALS),
    ("too long", raw([1, 2, 3]), TRIALS),
    # The audit's two: a 500 with limit, a 200 that broke mid-stream without.
    ("null first", raw([None, 1]), TRIALS),
    ("strings for ints", raw(["a", "b"]), TRIALS),
    ("bool for int", raw([True, 1]), TRIALS),
    ("float for int", raw([1.5, 1]), TRIALS),
    ("int past 64 bits", raw([2**63, 1]), TRIALS),
    ("int list", raw([[1], 1]), TRIALS),
    ("int for datetime", raw([5, "id"]), LIST),
    ("not a datetime", raw(["yesterday", "id"]), LIST),
    ("datetime out of range", raw(["0001-01-01T00:00:00+05:00", "id"]), LIST),
    ("null id", raw(["2025-01-01T00:00:00+00:00", None]), LIST),
    ("NUL in id", raw(["2025-01-01T00:00:00+00:00", "a\x00b"]), LIST),
    ("long id", raw(["2025-01-01T00:00:00+00:00", "x" * 300]), LIST),
    ("unknown tag", raw(["z", 1, None]), DATASETS),
    ("tag with wrong parts", raw(["b", "x", None]), DATASETS),
    ("upload tag, int parts", raw(["u", 1, 2]), DATASETS),
    ("deep nesting", raw([[[[[[[[1]]]]]]], 1]), TRIALS),
]


@pytest.mark.parametrize(("case", "cursor", "shape"), BAD, ids=[b[0] for b in BAD])
def test_malformed_cursors_are_422_at_cursor(case: str, cursor: str, shape: Any) -> None:
    shapes = shape if isinstance(shape[0], tuple) else (shape,)
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor, *shapes)
    assert caught.value.errors == [
        {"loc": ["query", "cursor"], "msg": "not a cursor this service issued"}
    ]
