"""``?format=parquet`` for trials and metrics, read back with DuckDB and checked row by row
against the JSON answer, on SQLite and on Postgres (the api in process, real databases).

The trials and epochs are written straight into the database (what a worker writes), so the
test needs no training; the live end-to-end run reads the same answers from a trained
comparison in test_distributed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import tiny_spec
from tests.support.services import in_process_api

PARQUET = "application/vnd.apache.parquet"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    with in_process_api(request.param, tmp_path, monkeypatch, "archbench_parquet") as c:
        yield c


def _fill(comparison_id: str) -> None:
    """Results as a worker records them: one trial still queued (nulls everywhere), the
    others finished with epochs; one epoch lacks a metric (a null in every format)."""
    from core.store.db import session_scope
    from core.store.tables import EpochMetric, Trial

    start = datetime(2026, 12, 3, 6, 40, 17, 123456, tzinfo=UTC)
    with session_scope() as s:
        trials = list(
            s.query(Trial)
            .filter(Trial.comparison_id == comparison_id)
            .order_by(Trial.variant_index, Trial.seed)
        )
        for i, t in enumerate(trials[:-1]):
            t.status = "succeeded"
            t.attempts = 1
            t.params, t.trainable_params, t.flops = 1000 + i, 900 + i, 3_000_000_000 + i
            t.epochs_done = 2
            t.started_at = start + timedelta(seconds=i)
            t.finished_at = start + timedelta(seconds=i, milliseconds=1500)
            t.train_seconds = 1.25 + i
            t.test_accuracy = 0.1 + 0.2 + i / 100  # not exact in binary: compared exactly
            t.test_loss = 2.0 / 3.0
            t.best_val_accuracy = 0.5
            t.inference_ms_per_sample = 0.0123 * (i + 1)
            t.worker, t.device, t.stop_reason = "w1", "CPU:0", "completed"
            for epoch in (1, 2):
                values: dict[str, Any] = {
                    "loss": 1.0 / (epoch + i),
                    "accuracy": 0.3 + epoch / 7,
                    "val_loss": 1.5 / (epoch + i),
                    "val_accuracy": 0.25 + epoch / 9,
                }
                if i == 1 and epoch == 2:
                    del values["val_accuracy"]
                s.add(EpochMetric(trial_id=t.id, epoch=epoch, values=values, seconds=0.5 * epoch))


def _duckdb_rows(data: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "answer.parquet"
    path.write_bytes(data)
    con = duckdb.connect()
    try:
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _same(parquet_value: Any, json_value: Any) -> bool:
    if isinstance(parquet_value, datetime):
        return bool(parquet_value.astimezone(UTC).isoformat().replace("+00:00", "Z") == json_value)
    if isinstance(parquet_value, float) and isinstance(json_value, float):
        return parquet_value == json_value or (math.isnan(parquet_value) and math.isnan(json_value))
    return bool(parquet_value == json_value)


def _check(rows: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    assert len(rows) == len(items)
    for got, want in zip(rows, items, strict=True):
        for key, value in got.items():
            assert _same(value, want[key]), (key, value, want[key])
        assert set(want) - set(got) <= {"error"}  # the JSON-only error object


def test_trials_and_metrics_as_parquet_match_the_json(client: TestClient, tmp_path: Path) -> None:
    spec = tiny_spec("parquet")
    created = client.post("/v1/comparisons", json=spec)
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    _fill(cid)

    for table in ("trials", "metrics"):
        items = client.get(f"/v1/comparisons/{cid}/{table}").json()["items"]
        assert items
        as_parquet = client.get(f"/v1/comparisons/{cid}/{table}", params={"format": "parquet"})
        assert as_parquet.status_code == 200, as_parquet.text
        assert as_parquet.headers["content-type"] == PARQUET
        assert f'filename="{table}-{cid}.parquet"' in as_parquet.headers["content-disposition"]
        rows = _duckdb_rows(as_parquet.content, tmp_path)
        _check(rows, items)
        # Negotiated like CSV: the Accept header when no ?format=, and ?format= wins over it.
        by_accept = client.get(f"/v1/comparisons/{cid}/{table}", headers={"Accept": PARQUET})
        assert by_accept.headers["content-type"] == PARQUET
        assert _duckdb_rows(by_accept.content, tmp_path) == rows
        csv_wins = client.get(
            f"/v1/comparisons/{cid}/{table}", params={"format": "csv"}, headers={"Accept": PARQUET}
        )
        assert csv_wins.headers["content-type"].startswith("text/csv")
        json_wins = client.get(
            f"/v1/comparisons/{cid}/{table}", params={"format": "json"}, headers={"Accept": PARQUET}
        )
        assert json_wins.json()["items"] == items

    trials = _duckdb_rows(
        client.get(f"/v1/comparisons/{cid}/trials", params={"format": "parquet"}).content, tmp_path
    )
    assert [r["status"] for r in trials].count("queued") == 1
    queued = next(r for r in trials if r["status"] == "queued")
    assert queued["started_at"] is None
    assert queued["test_accuracy"] is None
    assert isinstance(trials[0]["started_at"], datetime)  # typed, not text
    assert isinstance(trials[0]["flops"], int)
    metrics = _duckdb_rows(
        client.get(f"/v1/comparisons/{cid}/metrics", params={"format": "parquet"}).content,
        tmp_path,
    )
    assert sum(r["val_accuracy"] is None for r in metrics) == 1

    # A page as Parquet: its rows, and the next cursor in a header as for CSV.
    page = client.get(f"/v1/comparisons/{cid}/trials", params={"format": "parquet", "limit": 2})
    assert len(_duckdb_rows(page.content, tmp_path)) == 2
    nxt = page.headers["x-next-cursor"]
    rest = client.get(f"/v1/comparisons/{cid}/trials", params={"limit": 2, "cursor": nxt}).json()
    assert [t["id"] for t in rest["items"]] == [t["id"] for t in trials[2:4]]


def test_many_rows_stream_as_several_row_groups(tmp_path: Path) -> None:
    """Bounded memory: a row group per CHUNK_ROWS rows, each sent before the next is built."""
    import pyarrow as pa

    from api.tables_out import CHUNK_ROWS, parquet_chunks

    n = CHUNK_ROWS * 2 + 7
    rows = ({"i": i, "name": f"r{i}", "x": i / 3, "extra": {"k": i}} for i in range(n))
    chunks = list(
        parquet_chunks(rows, ["i", "name", "x", "extra"], {"i": pa.int64(), "x": pa.float64()})
    )
    assert len(chunks) == 3
    assert all(chunks)
    back = _duckdb_rows(b"".join(chunks), tmp_path)
    assert [r["i"] for r in back] == list(range(n))
    assert back[5] == {"i": 5, "name": "r5", "x": 5 / 3, "extra": '{"k": 5}'}
