"""Alembic, driven from code: upgrade a database and tell whether one is behind."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import migrations
from core.config import normalise_database_url
from core.store.db import make_engine

__all__ = [
    "SchemaState",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_up_to_date",
    "schema_problem",
    "schema_state",
    "upgrade",
]

SchemaState = Literal["current", "behind", "ahead"]

MIGRATIONS = Path(migrations.__file__).resolve().parent
"""Alembic's script directory: the top-level ``migrations`` package (a wheel carries it)."""


def _config(url: str) -> Config:
    """Alembic's configuration, built here: no alembic.ini or source tree is needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = normalise_database_url(url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``."""
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` ("base" empties it)."""
    command.downgrade(_config(url), revision)


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_up_to_date(url: str) -> bool:
    """True when the database is at this code's head revision."""
    return current_revision(url) == head_revision()


def schema_state(url: str) -> tuple[SchemaState, str | None, str | None]:
    """Where the database at ``url`` stands against this code: (state, current, head).

    ``behind``: never migrated, or at an older revision this code knows (``archbench migrate``
    brings it up). ``ahead``: at a revision this code does not know, so a newer archbench
    migrated it; migrating cannot help, only newer code can.
    """
    current, head = current_revision(url), head_revision()
    if current == head:
        return "current", current, head
    if current is None:
        return "behind", current, head
    try:
        ScriptDirectory.from_config(_config(url)).get_revision(current)
    except CommandError:
        return "ahead", current, head
    return "behind", current, head


def schema_problem(url: str) -> str | None:
    """Why this code must not serve the database at ``url`` and what to do, or None."""
    state, current, head = schema_state(url)
    if state == "behind":
        return (
            f"the database is at revision {current or 'none'} but this archbench needs {head}; "
            "run `archbench migrate` first"
        )
    if state == "ahead":
        return (
            f"the database is at revision {current}, which this archbench (newest revision "
            f"{head}) does not know: the code is older than the schema. Upgrade archbench to "
            "the version that migrated this database, or a newer one"
        )
    return None
