"""Render every error as RFC 9457 ``application/problem+json``; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ArchbenchError, InvalidInput, ServiceUnavailable

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem_response"]

log = logging.getLogger("archbench.api")

PROBLEM_JSON = "application/problem+json"
POOL_RETRY_AFTER_SECONDS = 2

# pydantic puts the discriminator tag of a tagged union into the location
# (["body", "dataset", "name"] is fine, but ["variants", 0, "layers", 1, "Conv2D", "filters"]
# is not a path into the request); such tags are dropped.
_PYDANTIC_NOISE = {"function-after", "function-before", "function-wrap", "function-plain"}


def problem_response(exc: ArchbenchError, request: Request | None = None) -> JSONResponse:
    """The JSON response for one of our errors."""
    instance = request.url.path if request is not None else None
    return JSONResponse(
        exc.to_problem(instance),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=exc.headers or None,
    )


def _clean_loc(loc: tuple[Any, ...]) -> list[str | int]:
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part in _PYDANTIC_NOISE or part.startswith("function-")):
            continue
        out.append(part if isinstance(part, int) else str(part))
    return out


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "json_invalid":
        ctx = err.get("ctx") or {}
        msg = f"invalid JSON: {ctx.get('error', msg)}"
    return msg


def validation_errors(errors: Any) -> list[dict[str, Any]]:
    """pydantic/FastAPI errors as our located errors."""
    return [{"loc": _clean_loc(tuple(e.get("loc", ()))), "msg": _message(e)} for e in errors]


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into problem+json."""

    @app.exception_handler(ArchbenchError)
    async def _ours(request: Request, exc: ArchbenchError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.detail)
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(InvalidInput(validation_errors(exc.errors())), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ArchbenchError(str(exc.detail), headers=dict(exc.headers or {}))
        err.status = exc.status_code
        err.slug = {
            404: "not-found",
            405: "method-not-allowed",
            401: "unauthorized",
            413: "payload-too-large",
        }.get(exc.status_code, "http-error")
        err.title = {
            404: "Not found",
            405: "Method not allowed",
            413: "Payload too large",
        }.get(exc.status_code, "Error")
        return problem_response(err, request)

    @app.exception_handler(SQLAlchemyTimeout)
    async def _pool_timeout(request: Request, exc: SQLAlchemyTimeout) -> JSONResponse:
        # Every pooled connection is busy: the api is overloaded, not broken. A 503 with
        # Retry-After tells a client to come back, where a 500 would say it is a bug.
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return problem_response(
            ServiceUnavailable(
                "The api is busy: no database connection became free in time; retry shortly.",
                headers={"Retry-After": str(POOL_RETRY_AFTER_SECONDS)},
            ),
            request,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            ArchbenchError("An unexpected error occurred; it has been logged."), request
        )
