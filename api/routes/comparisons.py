"""``/v1/comparisons``: submit, list, status, cancel, trials and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, TypeVar

import pyarrow as pa
from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.cache import TTLCache
from api.deps import (
    ComparisonId,
    ComparisonOnlyDep,
    SessionDep,
    SettingsDep,
    TenantDep,
    find_comparison,
)
from api.examples import SUBMIT_EXAMPLES, SUBMITTED_RESPONSES
from api.paging import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from api.schemas import (
    TRIAL_FIELDS,
    TRIAL_TYPES,
    ComparisonOut,
    Page,
    SubmittedOut,
    TrialOut,
    comparison_out,
    trial_out,
)
from api.tables_out import TABLE_RESPONSES, FormatQuery, prefetched, stream_table, table_format
from core.data.uploads import resolver_for
from core.exports.metrics import (
    KEYS,
    METRIC_KEY_TYPES,
    metric_columns,
    metrics_csv,
    metrics_json,
    metrics_rows,
)
from core.spec import MAX_REPLICATES, NO_NUL, ComparisonSpec
from core.status import ComparisonStatus
from core.store.db import session_scope
from core.store.tables import Comparison
from core.trials.comparisons import (
    body_hash,
    cancel_comparison,
    comparisons_page,
    create_comparison,
    trial_key,
    trials_in_order,
)
from core.trials.lifecycle import progress_of
from core.trials.validation import validate_comparison

__all__ = ["router"]

router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])
log = logging.getLogger("archbench.api")
_Route = TypeVar("_Route", bound=Callable[..., Any])


@router.post("", status_code=202, response_model=SubmittedOut, responses=SUBMITTED_RESPONSES)
def submit(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    spec: Annotated[ComparisonSpec, Body(openapi_examples=SUBMIT_EXAMPLES)],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SubmittedOut:
    """Validate a comparison, store it with one trial per (variant, seed), and queue them;
    ``warnings`` says what looks unmeant."""
    validated = validate_comparison(spec, settings, resolve=resolver_for(session, tenant))
    comparison, trial_ids, created = create_comparison(
        session,
        tenant=tenant,
        validated=validated,
        idempotency_key=idempotency_key,
        request_hash=body_hash(spec.model_dump(mode="json")),
        max_active=settings.max_active_comparisons_per_tenant,
        storage_quota_mb=settings.tenant_storage_mb,
    )
    if created:  # its commit sent the trials (core.trials.dispatch)
        log.info(
            "comparison submitted: %d trials, %d to train",
            comparison.trials_total,
            len(trial_ids),
            extra={"comparison_id": comparison.id, "tenant": tenant},
        )
    response.headers["Location"] = f"/v1/comparisons/{comparison.id}"
    counts = progress_of(session, [comparison.id])[comparison.id]
    out = comparison_out(comparison, counts)
    return SubmittedOut.model_validate({**dict(out), "warnings": validated.warnings})


@router.get("", response_model=Page[ComparisonOut])
def list_comparisons(
    session: SessionDep,
    tenant: TenantDep,
    status: ComparisonStatus | None = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Substring of the name"), NO_NUL
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ComparisonOut]:
    """Comparisons, newest first."""
    after = decode_cursor(cursor, (datetime, str)) if cursor else None
    rows, more = comparisons_page(
        session, tenant, status=status, name=name, limit=limit, after=after
    )
    counts = progress_of(session, [r.id for r in rows]) if rows else {}
    next_cursor = (
        encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
    )
    return Page(items=[comparison_out(r, counts[r.id]) for r in rows], next_cursor=next_cursor)


def _status_json(session: Session, comparison: Comparison) -> bytes:
    """The comparison as ``GET /v1/comparisons/{id}`` answers it."""
    counts = progress_of(session, [comparison.id])[comparison.id]
    return comparison_out(comparison, counts).model_dump_json().encode()


def _comparison_json(tenant: str, comparison_id: str) -> bytes:
    with session_scope() as s:
        return _status_json(s, find_comparison(s, tenant, comparison_id))


def _status_cache(request: Request) -> TTLCache[tuple[str, str], bytes]:
    cache: TTLCache[tuple[str, str], bytes] = request.app.state.status_cache
    return cache


@router.get("/{comparison_id}", response_model=ComparisonOut)
async def get_comparison(
    request: Request, comparison_id: ComparisonId, tenant: TenantDep
) -> Response:
    """A comparison's status and progress (at most ``ARCHBENCH_STATUS_CACHE_SECONDS`` old).

    The endpoint clients poll. One poll per comparison and interval reads the database (two
    queries in a worker thread); the others are answered from this process's memory on the
    event loop (see ``api.cache``). ``/events`` streams changes as they happen.
    """

    async def load() -> bytes:
        return await run_in_threadpool(_comparison_json, tenant, comparison_id)

    body = await _status_cache(request).get_or_load((tenant, comparison_id), load)
    assert body is not None
    return Response(body, media_type="application/json")


@router.post("/{comparison_id}/cancel", status_code=202, response_model=ComparisonOut)
async def cancel(request: Request, comparison_id: ComparisonId, tenant: TenantDep) -> Response:
    """Stop a comparison: queued trials never start, running ones stop at the next batch."""

    def cancel_it() -> bytes:
        with session_scope() as s:
            comparison = find_comparison(s, tenant, comparison_id)
            cancel_comparison(s, comparison)  # committed: later polls read it
            log.info(
                "comparison cancelled (now %s)",
                comparison.status,
                extra={"comparison_id": comparison.id, "tenant": tenant},
            )
            return _status_json(s, comparison)

    body = await run_in_threadpool(cancel_it)
    _status_cache(request).drop((tenant, comparison_id))  # on the loop, like every cache call
    return Response(body, status_code=202, media_type="application/json")


TRIAL_CHUNK = 500


def _table_route(path: str, row: Any = dict[str, Any]) -> Callable[[_Route], _Route]:
    """A GET that answers a table: a JSON page of ``row``, CSV or Parquet, documented alike."""
    return router.get(path, responses=TABLE_RESPONSES, response_model=Page[row])


@_table_route("/{comparison_id}/trials", TrialOut)
def trials(
    request: Request,
    comparison: ComparisonOnlyDep,
    fmt: FormatQuery = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: CursorQuery = None,
) -> StreamingResponse:
    """One row per (variant, seed); every row unless ``limit`` asks for a page."""
    # Checked and typed here, before a row is read: a bad cursor is a 422, not a broken stream.
    # A cursor of before the replicates, (variant_index, seed), continues after every
    # replicate of that seed.
    start = decode_cursor(cursor, (int, int, int), (int, int)) if cursor else None
    after = (*start, MAX_REPLICATES) if start is not None and len(start) == 2 else start
    comparison_id = comparison.id
    holder: dict[str, str | None] = {"next": None}

    def rows() -> Iterator[dict[str, Any]]:
        # One short session per TRIAL_CHUNK trials (keyset from the last one read): no pooled
        # connection is held while the client reads.
        key, left = after, limit
        while left is None or left > 0:
            size = TRIAL_CHUNK if left is None else min(TRIAL_CHUNK, left)
            with session_scope() as s:
                chunk = list(trials_in_order(s, comparison_id, after=key, limit=size))
                out = [trial_out(t) for t in chunk]
            yield from out
            if len(chunk) < size:
                return
            key = (chunk[-1].variant_index, int(chunk[-1].seed), int(chunk[-1].replicate or 0))
            if left is not None:
                left -= len(chunk)

    if limit:
        # Paging needs the cursor before streaming; a page is small, so materialise it.
        page = list(rows())
        if len(page) == limit:
            with session_scope() as s:
                holder["next"] = encode_cursor(*trial_key(s, page[-1]["id"]))
        return stream_table(
            page,
            columns=TRIAL_FIELDS,
            fmt=table_format(request, fmt),
            types=TRIAL_TYPES,
            filename=f"trials-{comparison_id}",
            next_cursor=holder["next"],
        )
    return stream_table(
        rows(),
        columns=TRIAL_FIELDS,
        fmt=table_format(request, fmt),
        types=TRIAL_TYPES,
        filename=f"trials-{comparison_id}",
    )


@_table_route("/{comparison_id}/metrics")
def metrics(
    request: Request,
    comparison: ComparisonOnlyDep,
    fmt: FormatQuery = None,
    variant: Annotated[str | None, Query(max_length=64), NO_NUL] = None,
) -> StreamingResponse:
    """Every epoch of every trial, long form; streamed, so memory stays bounded."""
    columns = metric_columns(comparison.spec)
    kind = table_format(request, fmt)
    if kind == "parquet":
        return stream_table(
            metrics_rows(comparison.id, columns, variant),
            columns=[*KEYS, *columns, "seconds"],
            fmt=kind,
            types={**METRIC_KEY_TYPES, **dict.fromkeys([*columns, "seconds"], pa.float64())},
            filename=f"metrics-{comparison.id}",
        )
    if kind == "csv":
        return StreamingResponse(
            prefetched(metrics_csv(comparison.id, columns, variant)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="metrics-{comparison.id}.csv"'},
        )
    return StreamingResponse(
        prefetched(metrics_json(comparison.id, columns, variant)), media_type="application/json"
    )
