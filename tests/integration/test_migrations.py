"""Alembic migrations: up and down on SQLite and Postgres, and no drift from core/tables.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core.db import make_engine
from core.migrate import current_revision, downgrade, head_revision, upgrade
from core.tables import Base


def _roundtrip(url: str) -> None:
    upgrade(url)
    assert current_revision(url) == head_revision()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"core/tables.py and the migrations disagree: {diff}"
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
