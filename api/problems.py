"""Render every error as RFC 9457 ``application/problem+json``; never a traceback."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ArchbenchError, ErrorItem, InvalidInput, ServiceUnavailable
from core.spec import UNION_TAGS

__all__ = [
    "PROBLEM_JSON",
    "PROBLEM_SCHEMAS",
    "document_problems",
    "install_problem_handlers",
    "pool_busy",
    "problem_response",
]

log = logging.getLogger("archbench.api")

PROBLEM_JSON = "application/problem+json"
POOL_RETRY_AFTER_SECONDS = 2


def pool_busy() -> ServiceUnavailable:
    """What a request answers when no pooled database connection became free in time: the
    api is overloaded, not broken, and ``Retry-After`` says to come back."""
    return ServiceUnavailable(
        "The api is busy: no database connection became free in time; retry shortly.",
        headers={"Retry-After": str(POOL_RETRY_AFTER_SECONDS)},
    )


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
        if isinstance(part, str) and (
            part in _PYDANTIC_NOISE or part in UNION_TAGS or part.startswith("function-")
        ):
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


def validation_errors(errors: Any) -> list[ErrorItem]:
    """pydantic/FastAPI errors as our located errors."""
    return [{"loc": _clean_loc(tuple(e.get("loc", ()))), "msg": _message(e)} for e in errors]


def _json_located(error: ErrorItem, doc: Any) -> ErrorItem:
    """A JSON syntax error at its line and column (1-based, as editors count), not at a
    character offset: ``{"loc": ["body"], "msg": "invalid JSON at line 3, column 5: ..."}``."""
    pos = error["loc"][-1] if error["loc"] and isinstance(error["loc"][-1], int) else None
    if pos is None or not isinstance(doc, str | bytes):
        return {**error, "loc": ["body"]}
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else doc
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    reason = error["msg"].removeprefix("invalid JSON: ")
    return {
        "loc": ["body"],
        "msg": f"invalid JSON at line {line}, column {column}: {reason}",
    }


def _not_json(error: ErrorItem, request: Request) -> ErrorItem:
    """A body that was not read as JSON because its Content-Type does not say JSON: say what
    to send instead of "Input should be a valid dictionary"."""
    if error["loc"] != ["body"] or "json" in error["msg"].lower():
        return error
    content_type = request.headers.get("content-type")
    if content_type and "json" in content_type.split(";")[0].lower():
        return error
    got = f"Content-Type {content_type.split(';')[0]!r}" if content_type else "no Content-Type"
    return {
        "loc": ["body"],
        "msg": f"send the body as JSON with the header Content-Type: application/json "
        f"(this request had {got})",
    }


# What a field of the comparison body must be, said where pydantic would only say "Input should
# be a valid dictionary" (or list) about a value of the wrong kind.
_EXPECTED: dict[tuple[str | int, ...], str] = {
    ("body", "dataset"): 'an object such as {"name": "mnist_5k"}',
    ("body", "seeds"): 'a list of seeds such as [0, 1, 2], or {"min": 3, "max": 20, "step": 1}',
    ("body", "training"): 'an object such as {"epochs": 3, "batch_size": 64}',
    ("body", "variants"): 'a list of variants such as [{"name": "a", "layers": [...]}]',
    ("body", "analysis"): 'an object such as {"predictions": true}',
}
_KIND_ERRORS = {"dict_type", "model_type", "model_attributes_type", "list_type"}
_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "true/false"}


def _expected_shapes(raw: Sequence[Any], errors: list[ErrorItem]) -> list[ErrorItem]:
    """A value of the wrong kind where ``_EXPECTED`` knows the field: one error saying what
    the field must be and what came (a union's alternatives would each add their own)."""
    out: list[ErrorItem] = []
    said: set[tuple[str | int, ...]] = set()
    for r, e in zip(raw, errors, strict=True):
        loc = tuple(e["loc"])
        if r.get("type") in _KIND_ERRORS and loc in _EXPECTED:
            if loc in said:
                continue
            said.add(loc)
            value = r.get("input")
            kind = _JSON_KINDS.get(type(value), "a list" if isinstance(value, list) else "null")
            if isinstance(value, dict):
                kind = "an object"
            e = {"loc": e["loc"], "msg": f"{loc[-1]} must be {_EXPECTED[loc]}, not {kind}"}
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                e["msg"] += f" ({json.dumps(value)})"
        out.append(e)
    return out


def _comparison_body_errors(
    request: Request, body: Any, errors: list[ErrorItem]
) -> list[ErrorItem]:
    """Every independent error of a comparison body in one answer
    (core.trials.validation.body_errors): the schema's, and those of the variants and dataset it
    would have hidden."""
    from api.deps import DEFAULT_TENANT
    from core.config import get_settings
    from core.data.uploads import resolver_for
    from core.store.db import session_scope
    from core.trials.validation import body_errors

    if not isinstance(body, dict):
        return errors
    tenant = str(getattr(request.state, "tenant", None) or DEFAULT_TENANT)
    try:
        with session_scope() as session:
            return body_errors(body, errors, get_settings(), resolver_for(session, tenant))
    except Exception:  # the schema's errors still stand on their own
        log.exception("could not collect the other errors of a comparison body")
        return errors


PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details; ``errors`` locates each bad input (422).",
        "type": "object",
        "properties": {
            "type": {"type": "string", "title": "Type"},
            "title": {"type": "string", "title": "Title"},
            "status": {"type": "integer", "title": "Status"},
            "detail": {"type": "string", "title": "Detail"},
            "instance": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Instance"},
            "errors": {
                "type": "array",
                "title": "Errors",
                "items": {"$ref": "#/components/schemas/ProblemError"},
            },
        },
        "required": ["type", "title", "status", "detail"],
    },
    "ProblemError": {
        "title": "ProblemError",
        "description": "One bad input: where (``loc``, from ``body``/``query``/``path``) and why.",
        "type": "object",
        "properties": {
            "loc": {
                "type": "array",
                "title": "Loc",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"type": "string", "title": "Msg"},
        },
        "required": ["loc", "msg"],
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the OpenAPI document what a 422 really is: ``application/problem+json`` with
    located ``errors`` (FastAPI documents its own ``HTTPValidationError``, which archbench never
    sends), so generated clients parse it."""
    for path in schema.get("paths", {}).values():
        for op in path.values():
            responses = op.get("responses") if isinstance(op, dict) else None
            if responses and "422" in responses:
                responses["422"] = {
                    "description": "Invalid input: every error, each located",
                    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(PROBLEM_SCHEMAS)
    return schema


@functools.lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    """``/v1/comparisons/{id}/report`` as a pattern (a parameter is one path segment)."""
    parts = re.split(r"\{[^}/]+\}", template)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def allowed_methods(request: Request, fallback: str | None) -> str | None:
    """Every method the OpenAPI document lists for this path (HEAD beside GET), for a 405's
    Allow. Starlette's own header names only the methods of the first route that matched,
    so a path served by several routes (GET and POST of ``/v1/comparisons``) would answer
    with part of its list. Paths outside the document keep Starlette's (``fallback``)."""
    for template, operations in request.app.openapi()["paths"].items():
        if _path_pattern(template).fullmatch(request.url.path):
            methods = {m.upper() for m in operations}
            return ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
    return fallback


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into problem+json, and document the 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(ArchbenchError)
    async def _ours(request: Request, exc: ArchbenchError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.detail)
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = exc.errors()
        errors = [
            _json_located(e, exc.body) if r.get("type") == "json_invalid" else e
            for r, e in zip(raw, validation_errors(raw), strict=True)
        ]
        errors = [_not_json(e, request) for e in errors]
        if request.method == "POST" and request.url.path.rstrip("/") == "/v1/comparisons":
            errors = _expected_shapes(raw, errors)
            errors = await run_in_threadpool(_comparison_body_errors, request, exc.body, errors)
        return problem_response(InvalidInput(errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allow = allowed_methods(request, headers.get("Allow") or headers.get("allow"))
            if allow:
                headers["Allow"] = allow
        err = ArchbenchError(str(exc.detail), headers=headers)
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
        return problem_response(pool_busy(), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            ArchbenchError("An unexpected error occurred; it has been logged."), request
        )
