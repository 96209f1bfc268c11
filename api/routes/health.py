"""Liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

import functools
import hmac
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from api.cache import TTLCache
from api.deps import SettingsDep
from api.metrics import CONTENT_TYPE, render_metrics
from core.errors import Unauthorized
from core.store.db import get_engine
from core.store.migrate import schema_state
from core.trials.queue import client_app

__all__ = ["READY_CACHE_SECONDS", "router"]

router = APIRouter(tags=["health"])

# /readyz is open and its checks cost milliseconds of CPU (a connection, the schema's
# revision, the broker): one check per api process and second answers every probe.
READY_CACHE_SECONDS = 1.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


def _check_db() -> str:
    """``ok``; ``ok: schema ahead ...`` while a newer archbench has migrated the database
    during a rolling upgrade (revisions are additive, so this process keeps serving);
    ``behind``; or ``down: <error>``."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        state, current, head = schema_state(get_engine().url.render_as_string(False))
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    if state == "ahead":
        return f"ok: schema ahead of this code (revision {current}, this code's newest {head})"
    return "ok" if state == "current" else "behind"


def _check_broker() -> str:
    try:
        with client_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"down: {type(exc).__name__}"


def _checks() -> dict[str, str]:
    return {"database": _check_db(), "broker": _check_broker()}


@router.get("/readyz", responses={503: {"description": "a dependency is down"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database (migrated) and the broker answer (checked at most once a
    second per api process; concurrent probes share one check)."""
    state = request.app.state
    if not hasattr(state, "readiness"):
        state.readiness = TTLCache[str, dict[str, str]](READY_CACHE_SECONDS, max_entries=1)
    cache: TTLCache[str, dict[str, str]] = state.readiness
    checks = await cache.get_or_load("checks", functools.partial(anyio.to_thread.run_sync, _checks))
    assert checks is not None
    ok = all(v == "ok" or v.startswith("ok: ") for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        401: {
            "description": "ARCHBENCH_METRICS_TOKEN is set and was not sent",
            "content": {"application/problem+json": {}},
        },
    },
)
def metrics(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus text format: requests by route, comparisons and trials by status, queue depth,
    running trials per worker, epoch durations and worker heartbeats (see ``api.metrics``).

    With ``ARCHBENCH_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``
    (401 otherwise); without it /metrics is open (API keys are for tenants, not scrapers)."""
    token = settings.metrics_token
    if token:
        scheme, _, sent = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            raise Unauthorized(
                "/metrics needs `Authorization: Bearer <ARCHBENCH_METRICS_TOKEN>`.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return Response(render_metrics(), media_type=CONTENT_TYPE)
