"""One timestamp format everywhere a client reads one: RFC 3339 in UTC with a ``Z``.

The comparison resource, lists, trials as JSON and CSV, the event stream, uploads and the
webhook body, on SQLite (which drops time zones) and on Postgres; the api in process.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import tiny_spec
from tests.support.services import in_process_api

RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    with in_process_api(request.param, tmp_path, monkeypatch, "archbench_ts") as c:
        yield c


def _times(value: Any) -> list[str]:
    """Every string in ``value`` that looks like a timestamp."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    if isinstance(value, str) and LOOKS_LIKE_TIME.search(value):
        return [value]
    return []


def _finish(comparison_id: str) -> None:
    """Trials ended as a worker ends them, and the comparison finished."""
    from core.store.db import session_scope
    from core.store.tables import EpochMetric, Trial
    from core.trials.finalize import finalize_comparison

    start = datetime(2026, 12, 3, 6, 40, 17, tzinfo=UTC)  # a whole second: no microseconds
    with session_scope() as s:
        for i, t in enumerate(s.query(Trial).filter(Trial.comparison_id == comparison_id)):
            t.status, t.attempts, t.epochs_done = "succeeded", 1, 1
            t.started_at = start + timedelta(seconds=i)
            t.finished_at = start + timedelta(seconds=i, microseconds=250_000)
            t.test_accuracy, t.test_loss = 0.9, 0.3
            s.add(EpochMetric(trial_id=t.id, epoch=1, values={"loss": 0.5}, seconds=0.1))
        s.flush()
        assert finalize_comparison(s, comparison_id) == "succeeded"


def test_every_answer_writes_timestamps_one_way(client: TestClient) -> None:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x_train=rng.random((60, 8, 8), dtype=np.float32), y_train=np.arange(60) % 3)
    upload = client.post("/v1/datasets", files={"file": ("m.npz", buf.getvalue())})
    assert upload.status_code in (200, 201), upload.text
    created = client.post("/v1/comparisons", json=tiny_spec("times"))
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    _finish(cid)

    seen: dict[str, list[str]] = {
        "upload": _times(upload.json()),
        "datasets": _times(client.get("/v1/datasets").json()),
        "comparison": _times(client.get(f"/v1/comparisons/{cid}").json()),
        "list": _times(client.get("/v1/comparisons").json()),
        "trials": _times(client.get(f"/v1/comparisons/{cid}/trials").json()),
    }
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/v1/comparisons/{cid}/trials", params={"format": "csv"}).text)
        )
    )
    seen["trials.csv"] = [r[k] for r in rows for k in ("started_at", "finished_at")]
    stream = client.get(f"/v1/comparisons/{cid}/events").text  # ends: the comparison has
    events = [
        json.loads(line[len("data: ") :])
        for line in stream.splitlines()
        if line.startswith("data: ")
    ]
    assert any(e.get("started_at") for e in events)  # trial_started / trial_finished carry it
    seen["events"] = _times(events)

    from core.config import get_settings
    from core.store.db import session_scope
    from core.store.tables import Comparison
    from core.trials.webhooks import payload

    with session_scope() as s:
        comparison = s.get(Comparison, cid)
        assert comparison is not None
        seen["webhook"] = _times(payload(s, comparison, get_settings()))

    for where, times in seen.items():
        assert times, f"no timestamp in {where}"
        for t in times:
            assert RFC3339_Z.fullmatch(t), (where, t)
    # The same instant reads the same in REST and in the stream.
    rest = {
        t["id"]: t["started_at"]
        for t in client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    }
    for e in events:
        if e.get("started_at") and e.get("id") in rest:
            assert e["started_at"] == rest[e["id"]]
    assert "2026-12-03T06:40:17Z" in rest.values()
