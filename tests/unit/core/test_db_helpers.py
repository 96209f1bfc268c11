"""core.store.db's upsert_insert and rows_changed on SQLite (Postgres: the lifecycle tests)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.store.db import make_engine, rows_changed, upsert_insert
from core.store.tables import Base, WorkerHeartbeat, utcnow


def test_upsert_and_rows_changed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    Base.metadata.create_all(engine)
    row = {"hostname": "h", "pid": 1, "name": "w", "processes": [], "started_at": utcnow()}
    try:
        with Session(engine) as s:
            for concurrency in (1, 3):
                stmt = upsert_insert(s, WorkerHeartbeat).values(
                    **row, concurrency=concurrency, last_seen=utcnow()
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["hostname", "pid"],
                        set_={"concurrency": stmt.excluded.concurrency},
                    )
                )
            s.commit()
            assert [h.concurrency for h in s.query(WorkerHeartbeat)] == [3]
            hit = s.execute(update(WorkerHeartbeat).values(name="x"))
            miss = s.execute(update(WorkerHeartbeat).where(WorkerHeartbeat.pid == 2).values(pid=3))
            assert (rows_changed(hit), rows_changed(miss)) == (1, 0)
    finally:
        engine.dispose()
