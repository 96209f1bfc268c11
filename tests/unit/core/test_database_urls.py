"""Postgres URLs as people write them reach the installed driver (psycopg 3) everywhere:
settings, ``make_engine`` (used by the api, workers and Alembic's env.py) and
``core.store.migrate``.
SQLAlchemy 2.0 maps a bare ``postgresql://`` to psycopg2 and does not know ``postgres://``."""

from __future__ import annotations

import pytest

from core.config import normalise_database_url
from core.store import migrate
from core.store.db import make_engine

WRITTEN = [
    "postgres://u:pw@db.example:5433/archbench",
    "postgresql://u:pw@db.example:5433/archbench",
    "postgresql+psycopg://u:pw@db.example:5433/archbench",
]


@pytest.mark.parametrize("url", WRITTEN)
def test_normalise(url: str) -> None:
    assert normalise_database_url(url) == "postgresql+psycopg://u:pw@db.example:5433/archbench"


@pytest.mark.parametrize("url", WRITTEN)
def test_make_engine_uses_psycopg(url: str) -> None:
    engine = make_engine(url)  # no connection is made
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.driver == "psycopg"
        assert (engine.url.host, engine.url.port, engine.url.database) == (
            "db.example",
            5433,
            "archbench",
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", WRITTEN)
def test_migrate_config_uses_psycopg(url: str) -> None:
    cfg = migrate._config(url)
    assert cfg.attributes["database_url"].startswith("postgresql+psycopg://u:pw@db.example")


def test_sqlite_is_left_alone() -> None:
    url = "sqlite:///:memory:"
    assert normalise_database_url(url) == url
    engine = make_engine(url)
    try:
        assert engine.url.drivername == "sqlite"
    finally:
        engine.dispose()
