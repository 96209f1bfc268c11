"""Database writes of the worker that survive a database away for a moment: each is tried again
after each of ``DB_RETRY_DELAYS`` while the error says the database cannot be reached (then
the trial is handed back), never after an error in the statement itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

__all__ = ["DB_RETRY_DELAYS", "transient", "with_db_retries"]

log = logging.getLogger("archbench.worker")

# Waits between tries of a database write that failed on the connection (then: hand back).
DB_RETRY_DELAYS = (0.5, 1.0, 2.0)

T = TypeVar("T")


_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open")


def transient(exc: BaseException) -> bool:
    """A database that cannot be reached (or dropped the connection), not a bad statement.

    SQLite reports a missing table or column as an OperationalError too: only its lock, busy
    and I/O errors count as passing."""
    if isinstance(exc, OperationalError) and type(exc.orig).__module__ == "sqlite3":
        return any(word in str(exc.orig).lower() for word in _SQLITE_TRANSIENT)
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def with_db_retries(what: str, fn: Callable[[], T]) -> T:
    """``fn()``, tried again after each of ``DB_RETRY_DELAYS`` while the database is away."""
    for delay in (*DB_RETRY_DELAYS, None):
        try:
            return fn()
        except Exception as exc:
            if delay is None or not transient(exc):
                raise
            log.warning("%s: the database is unreachable (%s); again in %.1f s", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
