"""Typed dependencies: a session per request, the tenant, and rows that must exist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.db import get_sessionmaker
from core.errors import NotFound
from core.tables import Comparison

__all__ = ["ComparisonDep", "SessionDep", "SettingsDep", "TenantDep"]


def _session() -> Iterator[Session]:
    """One session per request: commit on success, roll back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _tenant(request: Request) -> str:
    """The tenant of this request (single-user mode: 'default')."""
    return str(getattr(request.state, "tenant", "default"))


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TenantDep = Annotated[str, Depends(_tenant)]


def _comparison(
    comparison_id: Annotated[str, Path(description="The comparison's id (a UUID).")],
    session: SessionDep,
    tenant: TenantDep,
) -> Comparison:
    """The comparison by id within the tenant; any other id is a 404 like a missing one."""
    try:
        uuid.UUID(comparison_id)
    except ValueError:
        raise NotFound(f"No comparison {comparison_id!r}.") from None
    row = session.scalar(
        select(Comparison).where(Comparison.id == comparison_id, Comparison.tenant == tenant)
    )
    if row is None:
        raise NotFound(f"No comparison {comparison_id!r}.")
    return row


ComparisonDep = Annotated[Comparison, Depends(_comparison)]
