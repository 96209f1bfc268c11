"""The database engine and sessions: one engine per process, one session per unit of work."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings, normalise_database_url

__all__ = [
    "ShortReads",
    "dispose_engine",
    "get_engine",
    "get_sessionmaker",
    "make_engine",
    "rows_changed",
    "session_scope",
    "upsert_insert",
]


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, pool_timeout: float = 30.0
) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout (api and worker write at once).

    ``postgres://`` and ``postgresql://`` URLs, as people and hosting providers write them, get
    the installed psycopg 3 driver (SQLAlchemy 2.0 would pick psycopg2, which is not installed).
    """
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = 10  # a host that drops packets fails in seconds
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
    )


@functools.cache
def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    settings = get_settings()
    return make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )


@functools.cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The process-wide session factory."""
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def dispose_engine() -> None:
    """Drop pooled connections; call in a child process after fork."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class ShortReads(Session):
    """A session for a long computation that reads now and then (a report, a similarity):
    each ``execute`` runs in a short session of its own, its rows read at once, and gives its
    pooled connection back before the caller computes with them. Only reads: a write through
    it is lost with the short session's end (``session_scope`` commits nothing it did not do)."""

    def __init__(self) -> None:
        super().__init__(bind=get_engine())

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        with session_scope() as session:
            return session.execute(statement, *args, **kwargs).freeze()()

    def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.execute(statement, *args, **kwargs).scalars()

    def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.execute(statement, *args, **kwargs).scalar()

    def get(self, entity: Any, ident: Any, **kwargs: Any) -> Any:
        with session_scope() as session:
            return session.get(entity, ident, **kwargs)


def upsert_insert(session: Session, entity: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``entity`` (a table or mapped class) in the session's dialect, which
    has ``on_conflict_do_update`` / ``on_conflict_do_nothing``: the one place that branches
    between Postgres and SQLite for an upsert (both spell it ``ON CONFLICT``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``rowcount``, which SQLAlchemy types on
    ``CursorResult`` only, what ``Session.execute`` returns for those statements)."""
    return int(cast("CursorResult[Any]", result).rowcount)
