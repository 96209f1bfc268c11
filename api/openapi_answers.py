"""The OpenAPI document describes every answer an operation gives, errors included.

FastAPI documents the 200 and a 422 as ``application/json``; archbench answers every error as
``application/problem+json`` (``api.problems``) and several statuses FastAPI never sees in
the route's signature: 401 (the key, ``api.auth``), 404 (an id that is missing or another
tenant's), 409 (cancel of an ended comparison), 413 (body limits, ``api.limits``), 429
(quotas: submits, event streams, uploads), 503 (database unavailable or its pool exhausted),
and 400 (a body that cannot be parsed at all). This module adds them, each as problem+json,
to the generated document, so a client generator and a schema fuzzer see what really comes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.problems import PROBLEM_JSON, document_problems

__all__ = ["install_problem_answers", "type_variants"]

DESCRIPTIONS = {
    400: "The body cannot be parsed (malformed multipart or JSON framing).",
    401: "No valid API key (with ARCHBENCH_AUTH=true).",
    404: "No such comparison in this tenant (another tenant's answers the same).",
    409: "The resource's state does not allow this (e.g. cancel after the end).",
    413: "The request body is over ARCHBENCH_MAX_BODY_BYTES / ARCHBENCH_MAX_UPLOAD_BYTES.",
    422: "Invalid input; `errors` gives each problem's location (`loc`) and message.",
    429: "A quota is exhausted; `Retry-After` says when to try again. The tenant's storage "
    "quota (`storage-quota-exceeded`, ARCHBENCH_TENANT_STORAGE_MB) says what the request would "
    "add, what is used and what is left.",
    503: "The database is unavailable or busy; `Retry-After` when it is worth retrying soon.",
}
QUOTA_OPERATIONS = {
    ("post", "/v1/comparisons"),
    ("get", "/v1/comparisons/{comparison_id}/events"),
    ("post", "/v1/datasets"),
}
CONFLICT_OPERATIONS = {("post", "/v1/comparisons/{comparison_id}/cancel")}
OPEN_PATHS = {"/", "/healthz", "/readyz", "/metrics", "/openapi.json"}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    statuses = {422} if operation.get("parameters") or operation.get("requestBody") else set()
    if path.startswith("/v1/"):
        statuses |= {401, 503}
    if "{" in path:
        statuses.add(404)
    if method in ("post", "put", "patch"):
        statuses |= {400, 413, 422}
    if (method, path) in QUOTA_OPERATIONS:
        statuses.add(429)
    if (method, path) in CONFLICT_OPERATIONS:
        statuses.add(409)
    if path == "/metrics":
        statuses.add(401)
    if path == "/readyz":
        statuses.add(503)
    return statuses


def describe_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers to every operation of ``schema`` (in place; also returned)."""
    document_problems(schema)  # the Problem schema, and the 422 as problem+json
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in sorted(_statuses(method, path, operation)):
                key = str(status)
                if path == "/readyz" and status == 503:
                    continue  # /readyz's 503 is its own JSON body, already documented
                entry = responses.setdefault(key, {})
                entry["description"] = entry.get("description") or DESCRIPTIONS[status]
                entry["content"] = problem
            for key, entry in responses.items():
                # Every error FastAPI or a route documented as application/json is problem+json.
                if key.isdigit() and int(key) >= 400 and not (path == "/readyz" and key == "503"):
                    entry["content"] = problem
    return schema


def type_variants(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe each of a comparison's ``variants`` by the architecture language's own schema
    (``models.spec.Variant``: its layers a union tagged by ``type``), in place.

    The spec reads variants as plain JSON objects so that ``models.parse_variant`` can locate
    every error inside them, which left them untyped in the document: a generated client could
    not check a layer, and a schema fuzzer never wrote one. The models' definitions join the
    document's components; a name already there must hold the same schema."""
    from pydantic import TypeAdapter

    from models.spec import Variant

    variant = TypeAdapter(Variant).json_schema(ref_template="#/components/schemas/{model}")
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in {**variant.pop("$defs", {}), "Variant": variant}.items():
        if schemas.setdefault(name, definition) != definition:
            raise RuntimeError(f"the OpenAPI component {name!r} is defined twice")
    ref = {"$ref": "#/components/schemas/Variant"}
    variants = schemas.get("ComparisonSpec", {}).get("properties", {}).get("variants")
    if variants is not None:
        variants["items"] = ref
    single = schemas.get("AnalyzeRequest", {}).get("properties", {}).get("variant")
    if single is not None:
        kept = {k: single[k] for k in ("description", "examples") if k in single}
        single.clear()
        single.update({"allOf": [ref], **kept})
    return schema


def install_problem_answers(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with every error answer described (after
    ``api.problems``'s own step, which it wraps)."""
    generate = app.openapi
    done: list[bool] = []

    def openapi() -> dict[str, Any]:
        schema = generate()
        if not done:
            describe_answers(schema)
            type_variants(schema)
            done.append(True)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
