"""Typed dependencies: a session per request, the tenant, and rows that must exist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.errors import NotFound, Unauthorized
from core.store.db import session_scope
from core.store.tables import Comparison
from core.store.tenancy import owned

__all__ = [
    "DEFAULT_TENANT",
    "ComparisonDep",
    "ComparisonId",
    "ComparisonOnlyDep",
    "SessionDep",
    "SettingsDep",
    "TenantDep",
    "find_comparison",
]

DEFAULT_TENANT = "default"


def _session() -> Iterator[Session]:
    """One session per request: commit on success, roll back on error."""
    with session_scope() as session:
        yield session


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `archbench keys create` (needed when ARCHBENCH_AUTH=true).",
)


async def _settings() -> Settings:
    """The settings (async: FastAPI runs it on the loop, not in a worker thread)."""
    return get_settings()


async def _tenant(
    request: Request,
    settings: Annotated[Settings, Depends(_settings)],
    _key: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str:
    """The tenant of this request, set by ``api.auth.AuthMiddleware`` (auth off: 'default')."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:
        if settings.auth:
            # Never fall back to a shared tenant when auth is on.
            raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.")
        return DEFAULT_TENANT
    return str(tenant)


SessionDep = Annotated[Session, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(_settings)]
TenantDep = Annotated[str, Depends(_tenant)]


ComparisonId = Annotated[str, Path(description="The comparison's id (a UUID).")]


def find_comparison(session: Session, tenant: str, comparison_id: str) -> Comparison:
    """The comparison by id within the tenant; any other id is a 404 like a missing one."""
    try:
        uuid.UUID(comparison_id)
    except ValueError:
        raise NotFound(f"No comparison {comparison_id!r}.") from None
    row = session.scalar(owned(Comparison, tenant).where(Comparison.id == comparison_id))
    if row is None:
        raise NotFound(f"No comparison {comparison_id!r}.")
    return row


def _comparison(comparison_id: ComparisonId, session: SessionDep, tenant: TenantDep) -> Comparison:
    """The comparison of the path, within the request's tenant."""
    return find_comparison(session, tenant, comparison_id)


ComparisonDep = Annotated[Comparison, Depends(_comparison)]


def _comparison_only(comparison_id: ComparisonId, tenant: TenantDep) -> Comparison:
    """The comparison of the path, within the tenant, looked up in a short session that is
    closed before the endpoint runs: for streamed answers, which must not hold the request's
    pooled connection while a client reads (the row's columns stay loaded)."""
    with session_scope() as session:
        return find_comparison(session, tenant, comparison_id)


ComparisonOnlyDep = Annotated[Comparison, Depends(_comparison_only)]
