"""Alembic migrations: up and down on SQLite and Postgres, and no drift from the tables
(core/store/tables.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from core.status import TrialStatus
from core.store.db import make_engine
from core.store.migrate import current_revision, downgrade, head_revision, upgrade
from core.store.tables import Base
from tests.support.services import fresh_database


def _roundtrip(url: str) -> None:
    upgrade(url)
    assert current_revision(url) == head_revision()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"core/store/tables.py and the migrations disagree: {diff}"
        assert {"comparisons", "trials", "epoch_metrics"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    downgrade(url, "base")
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_sqlite_up_down_up(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.services
def test_postgres_up_down_up(pg_url: str) -> None:
    import psycopg

    base, _ = pg_url.rsplit("/", 1)
    name = "archbench_migrations_test"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        # Written as Heroku and many providers hand it out: migrate and make_engine must pick
        # psycopg 3 themselves (SQLAlchemy does not know "postgres://").
        _roundtrip(f"postgres://{base.split('://', 1)[1]}/{name}")
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert_history(url: str) -> None:
    """One comparison, trial and epoch row, written as revision 0003 knew them."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO comparisons (id, tenant, name, status, spec, analyses, created_at,"
                " trials_total, epochs_total, cancel_requested) VALUES ('c1', 'default', 'n',"
                " 'succeeded', '{}', '{}', '2026-01-01 00:00:00', 1, 1, false)"
            )
            conn.exec_driver_sql(
                "INSERT INTO trials (id, comparison_id, variant, variant_index, seed, status,"
                " attempts, epochs_planned, epochs_done, created_at) VALUES ('t1', 'c1', 'v', 0,"
                " 0, 'succeeded', 1, 1, 1, '2026-01-01 00:00:00')"
            )
            conn.exec_driver_sql(
                'INSERT INTO epoch_metrics (trial_id, epoch, "values", recorded_at)'
                " VALUES ('t1', 1, '{}', '2026-01-01 00:00:00')"
            )
    finally:
        engine.dispose()


def _rows(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(
                conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                for t in ("comparisons", "trials", "epoch_metrics")
            )
    finally:
        engine.dispose()


def _set_status(url: str, table: str, status: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {table} SET status = '{status}'")
    finally:
        engine.dispose()


def _status_checks(url: str) -> None:
    """0004_status_checks: the status columns take the five words only, the rows (and the
    rows that reference them, ON DELETE CASCADE) survive SQLite's table copy both ways, and
    the downgrade drops the checks."""
    upgrade(url, "0003")
    _insert_history(url)
    upgrade(url, "0004_status_checks")
    assert _rows(url) == (1, 1, 1)
    for table in ("comparisons", "trials"):
        for word in TrialStatus:
            _set_status(url, table, word)
        with pytest.raises(IntegrityError):
            _set_status(url, table, "paused")
    downgrade(url, "0003")
    assert _rows(url) == (1, 1, 1)
    _set_status(url, "trials", "paused")  # no check any more
    _set_status(url, "trials", "succeeded")
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_sqlite_status_checks(tmp_path: Path) -> None:
    _status_checks(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.services
def test_postgres_status_checks() -> None:
    with fresh_database("archbench_migrations_checks") as url:
        _status_checks(url)


def _references(url: str) -> None:
    """0006_analysis_by_reference down: a trial that referred to another's stored analysis
    gets its own copy back, and rows no trial is left for go, before the cascading keys
    return; up again keeps the copies (they are the trial's own)."""
    upgrade(url, "0005_stage_replicate")
    _insert_history(url)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO trials (id, comparison_id, variant, variant_index, seed, status,"
                " attempts, epochs_planned, epochs_done, created_at, analysis_id) VALUES"
                " ('t2', 'c1', 'v', 0, 1, 'succeeded', 0, 1, 1, '2026-01-01 00:00:00', 't1')"
            )
            for trial in ("t1", "gone"):
                conn.execute(
                    text(
                        "INSERT INTO trial_predictions (trial_id, n, num_classes, examples,"
                        " labels, predicted, probs, recorded_at) VALUES (:t, 1, 2, :e, :l, :p,"
                        " :q, '2026-01-01 00:00:00')"
                    ),
                    {"t": trial, "e": b"\x01", "l": b"\x02", "p": b"\x03", "q": b"\x04\x05"},
                )
                conn.execute(
                    text(
                        "INSERT INTO trial_layer_grams (trial_id, layer_index, layer, kind,"
                        " probe_size, probe_hash, gram) VALUES (:t, 0, 'd', 'Dense', 2, 'h', :g)"
                    ),
                    {"t": trial, "g": b"\x06\x07"},
                )
    finally:
        engine.dispose()
    downgrade(url, "0005_stage_replicate")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for table in ("trial_predictions", "trial_layer_grams"):
                owners = conn.exec_driver_sql(f"SELECT trial_id FROM {table} ORDER BY 1")
                assert [r[0] for r in owners] == ["t1", "t2"]
            probs = conn.exec_driver_sql("SELECT probs FROM trial_predictions WHERE trial_id='t2'")
            assert bytes(probs.scalar_one()) == b"\x04\x05"
    finally:
        engine.dispose()
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_sqlite_references_copied_back_on_downgrade(tmp_path: Path) -> None:
    _references(f"sqlite:///{tmp_path / 'r.db'}")


@pytest.mark.services
def test_postgres_references_copied_back_on_downgrade() -> None:
    with fresh_database("archbench_references") as url:
        _references(url)
