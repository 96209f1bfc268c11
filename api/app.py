"""The FastAPI application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import AuthMiddleware, check_auth_setup
from api.cache import TTLCache
from api.docs import install_docs
from api.limits import BodyLimitMiddleware, UploadGateMiddleware
from api.metrics import RequestMetricsMiddleware
from api.openapi_answers import install_problem_answers
from api.problems import install_problem_handlers
from api.routes import (
    architectures,
    comparisons,
    dashboard,
    datasets,
    differences,
    health,
    reports,
    robustness,
)
from api.routes import deliveries as webhook_deliveries
from core.config import Settings, get_settings
from core.errors import ServiceUnavailable
from core.store.db import get_engine
from core.store.migrate import schema_problem
from core.version import __version__

__all__ = ["create_app"]

log = logging.getLogger("archbench.api")

DESCRIPTION = """\
archbench trains several Keras architectures on the same data, budget and seeds, and answers
"which is better, and how sure are we?" with means, confidence intervals and significance.

Errors are RFC 9457 `application/problem+json`, with `errors: [{"loc", "msg"}]` for bad input.
"""


def check_schema(settings: Settings) -> None:
    """Refuse to serve a database that is behind this code's migrations, or ahead of them
    (a newer archbench migrated it: only newer code can be started on it)."""
    problem = schema_problem(settings.database_url)
    if problem:
        raise ServiceUnavailable(problem[0].upper() + problem[1:] + ".")


class TrailingSlashMiddleware:
    """``POST /v1/comparisons/`` is ``POST /v1/comparisons``: a trailing slash on an api path
    is dropped before routing, instead of Starlette's empty 307 (which many clients do not
    follow for a POST, or follow without the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/v1/") and len(path) > 4 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/")
                raw = scope.get("raw_path")
                if isinstance(raw, bytes) and raw.endswith(b"/"):
                    scope["raw_path"] = raw.rstrip(b"/")
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, check_migrations: bool = True) -> FastAPI:
    """Build the api; by default it refuses to start on a database that needs migrating."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if check_migrations:
            check_schema(settings)
            check_auth_setup(settings)  # refuses unsafe production setups; logs auth on/off
        elif not settings.auth:
            log.warning("authentication is OFF (single-user mode): every request is trusted")
        # Everything imported and built so far lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it. A report over 20,000
        # epochs allocates enough objects to trigger several; measured: 210 -> 145 ms.
        gc.freeze()
        yield
        hub = getattr(app.state, "event_hub", None)
        if hub is not None:
            await hub.close()
        get_engine().dispose()

    app = FastAPI(
        title="archbench",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN: /docs is served from local
        # files instead (api.docs), and ReDoc is off.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    install_docs(app)
    # (tenant, comparison id) -> the status JSON; see api.cache.
    app.state.status_cache = TTLCache[tuple[str, str], bytes](settings.status_cache_seconds)
    # The last added runs first: the key is checked before the body limit reads a byte, and
    # an upload's slot is taken (or refused) before its body is read.
    app.add_middleware(UploadGateMiddleware, settings=settings)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(AuthMiddleware, settings=settings)
    app.add_middleware(RequestMetricsMiddleware, access_log=settings.access_log)
    routers = (comparisons, reports, differences, robustness, architectures, datasets, health)
    for module in (*routers, dashboard):
        app.include_router(module.router)
    app.include_router(webhook_deliveries.router)
    install_problem_answers(app)
    # Added last, so it runs first: every other layer sees the path without the slash.
    app.add_middleware(TrailingSlashMiddleware)
    return app
