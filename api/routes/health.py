"""Liveness, readiness (database and broker) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from api.deps import SessionDep
from core.db import get_engine
from core.migrate import is_up_to_date
from core.queue import client_app
from core.tables import Comparison, Trial

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


def _check_db() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok" if is_up_to_date(str(get_engine().url.render_as_string(False))) else "behind"
    except Exception as exc:
        return f"down: {type(exc).__name__}"


def _check_broker() -> str:
    try:
        with client_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"down: {type(exc).__name__}"


@router.get("/readyz", responses={503: {"description": "a dependency is down"}})
def readyz() -> JSONResponse:
    """Ready when the database (migrated) and the broker answer."""
    checks = {"database": _check_db(), "broker": _check_broker()}
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(session: SessionDep) -> PlainTextResponse:
    """Prometheus text format: comparisons and trials by status."""
    lines = [
        "# HELP archbench_comparisons Comparisons by status.",
        "# TYPE archbench_comparisons gauge",
    ]
    for status, n in session.execute(
        select(Comparison.status, func.count()).group_by(Comparison.status)
    ):
        lines.append(f'archbench_comparisons{{status="{status}"}} {n}')
    lines += ["# HELP archbench_trials Trials by status.", "# TYPE archbench_trials gauge"]
    for status, n in session.execute(select(Trial.status, func.count()).group_by(Trial.status)):
        lines.append(f'archbench_trials{{status="{status}"}} {n}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
