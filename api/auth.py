"""Authentication: ``Authorization: Bearer <key>`` mapped to a tenant, as pure ASGI middleware.

Every path needs a key when ``ARCHBENCH_AUTH=true`` except the open ones (health, metrics, the
OpenAPI document and its viewers, the dashboard's ``/`` and ``/static/*``). The tenant is put in
``request.state.tenant``, where ``api.deps.TenantDep`` reads it; nothing else decides tenancy.
"""

from __future__ import annotations

import functools
import logging

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.cache import TTLCache
from api.problems import PROBLEM_JSON, pool_busy
from core.config import Settings
from core.errors import ArchbenchError, ServiceUnavailable, Unauthorized
from core.store.db import session_scope
from core.store.tenancy import (
    KEY_PREFIX,
    TENANT_NAME,
    active_key_count,
    ensure_key,
    tenant_for_key,
)

__all__ = [
    "OPEN_PATHS",
    "AuthMiddleware",
    "UnsafeConfiguration",
    "check_auth_setup",
    "is_open_path",
    "store_bootstrap_key",
]

log = logging.getLogger("archbench.api")

OPEN_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
)
OPEN_PREFIXES = ("/static/",)
BOOTSTRAP_MIN_LENGTH = 32


def is_open_path(path: str) -> bool:
    """True for the paths that never need a key."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _lookup(key: str) -> str | None:
    with session_scope() as session:
        return tenant_for_key(session, key)


async def _reject(exc: ArchbenchError, scope: Scope, receive: Receive, send: Send) -> None:
    headers = dict(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="archbench"'
    response = JSONResponse(
        exc.to_problem(scope.get("path")),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )
    await response(scope, receive, send)


class AuthMiddleware:
    """Resolve the tenant from the bearer key; 401 problem when it is missing, wrong or revoked."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # key -> tenant for found keys only (see api.cache: revocation applies within the TTL).
        self.tenants = TTLCache[str, str](settings.key_cache_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.auth or is_open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = _bearer(scope)
        if key is None:
            await _reject(
                Unauthorized("An API key is required: send `Authorization: Bearer <key>`."),
                scope,
                receive,
                send,
            )
            return
        try:
            tenant = await self.tenants.get_or_load(
                key, functools.partial(anyio.to_thread.run_sync, _lookup, key)
            )
        except PoolTimeout:
            log.warning("database pool exhausted looking up a key on %s", scope["path"])
            await _reject(pool_busy(), scope, receive, send)
            return
        except SQLAlchemyError as exc:
            log.error("key lookup failed: %s", type(exc).__name__)
            await _reject(ServiceUnavailable("The database is unavailable."), scope, receive, send)
            return
        if tenant is None:
            await _reject(
                Unauthorized("The API key is not valid (unknown or revoked)."),
                scope,
                receive,
                send,
            )
            return
        scope.setdefault("state", {})["tenant"] = tenant
        await self.app(scope, receive, send)


class UnsafeConfiguration(RuntimeError):
    """The api was asked to start in a way that would expose it without authentication."""


def _exposure(settings: Settings) -> str | None:
    """Why this setup must not run without keys, or None (the embedded single-user default)."""
    if settings.env == "production":
        return "ARCHBENCH_ENV=production"
    if not settings.is_embedded:
        return "a distributed deployment (ARCHBENCH_DATABASE_URL is not the embedded SQLite)"
    return None


def store_bootstrap_key(settings: Settings) -> None:
    """Store ``ARCHBENCH_BOOTSTRAP_KEY`` (or the first line of ``ARCHBENCH_BOOTSTRAP_KEY_FILE``)
    for ``ARCHBENCH_BOOTSTRAP_TENANT``, once: the first key arrives with the deployment, so a
    production api never starts keyless. A malformed key refuses the start (UnsafeConfiguration)."""
    try:
        key = settings.bootstrap_key_value()
    except ValueError as exc:
        raise UnsafeConfiguration(f"refusing to start: {exc}") from None
    if not key:
        return
    if not key.startswith(KEY_PREFIX) or len(key) < BOOTSTRAP_MIN_LENGTH:
        raise UnsafeConfiguration(
            f"refusing to start: the bootstrap key must start with {KEY_PREFIX!r} and be at "
            f"least {BOOTSTRAP_MIN_LENGTH} characters; make one with "
            f"`echo {KEY_PREFIX}$(openssl rand -hex 24)`"
        )
    if not TENANT_NAME.match(settings.bootstrap_tenant):
        raise UnsafeConfiguration(
            "refusing to start: ARCHBENCH_BOOTSTRAP_TENANT takes 1-64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    with session_scope() as session:
        outcome = ensure_key(session, settings.bootstrap_tenant, key)
    if outcome == "created":
        log.info("stored the bootstrap API key for tenant %r", settings.bootstrap_tenant)
    elif outcome == "revoked":
        log.warning("the bootstrap API key was revoked; it stays revoked (unset it)")


def check_auth_setup(settings: Settings, *, quiet: bool = False) -> None:
    """Refuse to serve a shared deployment without keys; embedded, only warn. Needs a migrated
    database.

    Production (``ARCHBENCH_ENV=production``) and every distributed deployment (a database
    other than the embedded SQLite, so reachable by more than one machine) refuse to start
    unless ``ARCHBENCH_ALLOW_NO_AUTH=true`` says it is meant:

    - with auth off (anyone could train and read everything);
    - with auth on and no unrevoked key (nobody could use it; create one with
      ``archbench keys create --tenant NAME`` first).

    The embedded default (SQLite, ``archbench up``) may run with auth off; it logs that.
    ``quiet``: log nothing (the CLI checks before serving and prints the one line itself).
    """
    if quiet:
        log_state = log.disabled
        log.disabled = True
        try:
            check_auth_setup(settings)
        finally:
            log.disabled = log_state
        return
    exposed = _exposure(settings)
    if settings.auth:
        store_bootstrap_key(settings)
    if not settings.auth:
        if exposed and not settings.allow_no_auth:
            msg = (
                f"refusing to start: {exposed} with ARCHBENCH_AUTH off would let anyone train "
                "and read everything. Set ARCHBENCH_AUTH=true and create a key with "
                "`archbench keys create --tenant NAME`, or set ARCHBENCH_ALLOW_NO_AUTH=true to "
                "run without authentication on purpose."
            )
            log.error(msg)
            raise UnsafeConfiguration(msg)
        log.warning("authentication is OFF (single-user mode): every request is trusted")
        return
    with session_scope() as session:
        keys = active_key_count(session)
    if keys == 0:
        msg = (
            "ARCHBENCH_AUTH=true but no API key exists, so every request will be refused; "
            "create one with `archbench keys create --tenant NAME`"
        )
        if exposed and not settings.allow_no_auth:
            msg = (
                f"refusing to start: {exposed} with {msg}, or set ARCHBENCH_ALLOW_NO_AUTH=true "
                "to start without keys on purpose"
            )
            log.error(msg)
            raise UnsafeConfiguration(msg)
        log.warning(msg)
    else:
        log.info("authentication is ON (%d active API key(s))", keys)
