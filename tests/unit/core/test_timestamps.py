"""core.timestamps: RFC 3339, UTC, ``Z``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from core.timestamps import json_default, rfc3339


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 12, 3, 6, 40, 17, tzinfo=UTC)) == "2026-12-03T06:40:17Z"
    assert rfc3339(datetime(2026, 12, 3, 6, 40, 17, 5, tzinfo=UTC)) == "2026-12-03T06:40:17.000005Z"
    assert rfc3339(datetime(2026, 12, 3, 6, 40, 17)) == "2026-12-03T06:40:17Z"  # naive is UTC
    cet = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 12, 3, 7, 40, 17, tzinfo=cet)) == "2026-12-03T06:40:17Z"


def test_json_default() -> None:
    when = datetime(2026, 12, 3, 6, 40, 17, tzinfo=UTC)
    assert json.dumps({"t": when}, default=json_default) == '{"t": "2026-12-03T06:40:17Z"}'
