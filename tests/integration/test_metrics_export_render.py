"""The metrics table rendered by Postgres (one string per trial) equals the row-by-row path.

The embedded SQLite path builds each row and lets ``csv.writer`` write it; on Postgres the
database renders and joins each trial's rows itself. Both must give the same CSV bytes and
the same JSON values, tricky variant names (comma, quote, newline) and missing values
included.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.pool import QueuePool

from core.store.tables import Comparison, EpochMetric, Trial, new_id, utcnow
from tests.support.helpers import stored_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = [pytest.mark.services]

VARIANTS = ["plain", 'say "hi", twice', "line\nbreak", "comma,only"]
COLUMNS = ["loss", "accuracy", "val_loss", "val_accuracy"]
TRIAL_IDS = [new_id() for _ in range(8)]  # the same rows in both databases


def store(comparison_id: str) -> None:
    from core.store.db import session_scope

    now = utcnow()
    with session_scope() as s:
        s.execute(
            insert(Comparison).values(
                id=comparison_id,
                tenant="default",
                name="render",
                status="succeeded",
                spec=stored_spec(),
                analyses={},
                created_at=now,
                trials_total=8,
                epochs_total=8 * 3,
                cancel_requested=False,
            )
        )
        for i in range(8):
            trial_id = TRIAL_IDS[i]
            s.execute(
                insert(Trial).values(
                    id=trial_id,
                    comparison_id=comparison_id,
                    variant=VARIANTS[i % 4],
                    variant_index=i % 4,
                    seed=i // 4,
                    status="succeeded",
                    attempts=1,
                    epochs_planned=3,
                    epochs_done=3,
                    created_at=now,
                )
            )
            for epoch in (3, 1, 2):  # stored out of order; rendered in epoch order
                values = {"loss": 1 / (epoch + i), "accuracy": 0.1 * epoch + 1e-17 * i}
                if epoch != 2:
                    values |= {"val_loss": 2.5e-7 * epoch, "val_accuracy": 0.30000000000000004}
                s.execute(
                    insert(EpochMetric).values(
                        trial_id=trial_id,
                        epoch=epoch,
                        values=values,
                        seconds=None if epoch == 3 and i == 0 else 0.1 * epoch,
                        recorded_at=now,
                    )
                )


def render(comparison_id: str, variant: str | None) -> tuple[bytes, bytes]:
    from core.exports.metrics import metrics_csv, metrics_json

    return (
        b"".join(metrics_json(comparison_id, COLUMNS, variant)),
        b"".join(metrics_csv(comparison_id, COLUMNS, variant)),
    )


def test_postgres_renders_the_same_bytes_as_the_row_path(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = new_id()
    outputs = {}
    with fresh_database("archbench_render") as url, in_process_database(url, monkeypatch):
        store(cid)
        outputs["postgres"] = [render(cid, v) for v in (None, VARIANTS[1])]
    with in_process_database(f"sqlite:///{tmp_path / 'render.db'}", monkeypatch):
        store(cid)
        outputs["sqlite"] = [render(cid, v) for v in (None, VARIANTS[1])]
    (pg_json, pg_csv), (pg_one_json, _) = outputs["postgres"]
    pairs = zip(outputs["postgres"], outputs["sqlite"], strict=True)
    for (a_json, a_csv), (b_json, b_csv) in pairs:
        assert a_csv == b_csv  # byte for byte, as csv.writer writes it
        a_items, b_items = json.loads(a_json)["items"], json.loads(b_json)["items"]
        # Metric values exactly; SQLite prints its REAL column `seconds` with 15 digits.
        diff = [
            (a, b)
            for a, b in zip(a_items, b_items, strict=True)
            if {**a, "seconds": 0} != {**b, "seconds": 0}
            or (a["seconds"] is None) != (b["seconds"] is None)
            or (a["seconds"] is not None and a["seconds"] != pytest.approx(b["seconds"], rel=1e-14))
        ]
        assert not diff, json.dumps(
            diff[:1]
        )  # compared parsed: the dialects space JSON differently
    items = json.loads(pg_json)["items"]
    assert len(items) == 24
    assert [(m["variant"], m["seed"], m["epoch"]) for m in items[:3]] == [
        ("plain", 0, 1),
        ("plain", 0, 2),
        ("plain", 0, 3),
    ]
    assert len(json.loads(pg_one_json)["items"]) == 6
    rows = list(csv.DictReader(io.StringIO(pg_csv.decode())))
    assert len(rows) == 24
    assert {r["variant"] for r in rows} == set(VARIANTS)
    assert rows[1]["val_loss"] == ""  # epoch 2 has no validation values


def add_trials_without_epochs(comparison_id: str) -> None:
    """Five queued trials in the middle of the table's order (variant 1, seeds 2 to 6): reads
    whose trials have no rows at all."""
    from core.store.db import session_scope

    with session_scope() as s:
        for seed in range(2, 7):
            s.execute(
                insert(Trial).values(
                    id=new_id(),
                    comparison_id=comparison_id,
                    variant=VARIANTS[1],
                    variant_index=1,
                    seed=seed,
                    status="queued",
                    attempts=0,
                    epochs_planned=3,
                    epochs_done=0,
                    created_at=utcnow(),
                )
            )


def every_format(comparison_id: str, variant: str | None) -> tuple[bytes, bytes, list[Any]]:
    from core.exports.metrics import metrics_csv, metrics_json, metrics_rows

    return (
        b"".join(metrics_json(comparison_id, COLUMNS, variant)),
        b"".join(metrics_csv(comparison_id, COLUMNS, variant)),
        list(metrics_rows(comparison_id, COLUMNS, variant)),
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_short_reads_give_the_same_table_whatever_their_size(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table is read in short sessions of CHUNK_TRIALS trials and at most CHUNK_ROWS rows;
    reads that end inside a trial, on its last epoch, or on trials without rows give the
    bytes (and Parquet rows) of one read of everything, in the same order."""
    from core.exports import metrics as metrics_export
    from core.store.db import get_engine

    cid = new_id()
    with (
        fresh_database("archbench_reads")
        if database == "postgres"
        else contextlib.nullcontext(f"sqlite:///{tmp_path / 'reads.db'}") as url,
        in_process_database(url, monkeypatch),
    ):
        store(cid)
        add_trials_without_epochs(cid)
        whole = {v: every_format(cid, v) for v in (None, VARIANTS[1])}
        items = json.loads(whole[None][0])["items"]
        assert len(items) == 24
        assert [(m["variant"], m["seed"], m["epoch"]) for m in items[6:9]] == [
            (VARIANTS[1], 0, 1),
            (VARIANTS[1], 0, 2),
            (VARIANTS[1], 0, 3),
        ]
        for trials, rows in [(1, 1), (2, 3), (3, 4), (4, 2), (2, 1000)]:
            monkeypatch.setattr(metrics_export, "CHUNK_TRIALS", trials)
            monkeypatch.setattr(metrics_export, "CHUNK_ROWS", rows)
            for variant, expected in whole.items():
                assert every_format(cid, variant) == expected, (trials, rows, variant)
        # Between reads no connection is held: the reads' sessions are closed before the rows
        # are handed on (a slow client cannot pin one).
        pool = get_engine().pool
        assert isinstance(pool, QueuePool)
        for read in (metrics_export.metrics_json, metrics_export.metrics_csv):
            chunks = read(cid, COLUMNS, None)
            assert isinstance(chunks, Generator)
            assert next(chunks)
            assert pool.checkedout() == 0, read.__name__
            chunks.close()
        dict_rows = metrics_export.metrics_rows(cid, COLUMNS, None)
        assert isinstance(dict_rows, Generator)
        assert next(dict_rows)
        assert pool.checkedout() == 0
        dict_rows.close()
