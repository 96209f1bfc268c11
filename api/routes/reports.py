"""The verdict: ``/report`` (JSON, CSV, Markdown, text), ``/report.png`` and ``/events``.

The report and its figure are served as stored (``core.report.stored``): a read computes the
report only when the comparison's rows changed since it was stored, and then without holding
a pooled connection while it computes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from api.deps import ComparisonId, ComparisonOnlyDep, TenantDep, find_comparison
from api.schemas import comparison_out
from api.streams import EventHub, LimitedStreamingResponse, StreamLimits
from core.config import get_settings
from core.errors import NotFound
from core.report.build import PAIRWISE_ROW_COLUMNS, REPORT_ROW_COLUMNS, pairwise_rows, report_rows
from core.report.plot import render_png
from core.report.render import render_markdown, render_text, rows_to_csv
from core.report.schema import Report
from core.report.stored import stored_report, stored_report_json
from core.report.tuning import budget_curves
from core.report.tuning_plot import render_tuning_png
from core.report.tuning_rows import load_tuning_observations, tuning_spec_of
from core.status import TERMINAL, TrialStatus
from core.store.db import session_scope
from core.store.tables import Comparison
from core.timestamps import json_default
from core.trials.comparisons import epochs_since, trial_states
from core.trials.lifecycle import progress_of

__all__ = ["router"]

router = APIRouter(prefix="/v1/comparisons", tags=["reports"])

ReportFormat = Literal["json", "csv", "md", "text"]
EVENT_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def _report_format(request: Request, fmt: ReportFormat | None) -> ReportFormat:
    if fmt is not None:
        return fmt
    accept = request.headers.get("accept", "")
    if "text/csv" in accept:
        return "csv"
    if "text/markdown" in accept:
        return "md"
    return "json"


@router.get(
    "/{comparison_id}/report",
    response_model=Report,
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "text/markdown": {},
                "text/plain": {},
            }
        }
    },
)
def report(
    request: Request,
    comparison: ComparisonOnlyDep,
    fmt: Annotated[ReportFormat | None, Query(alias="format")] = None,
    table: Annotated[
        Literal["variants", "pairwise"],
        Query(description="CSV only: one row per variant, or one per tested pair."),
    ] = "variants",
) -> Any:
    """Design, variants, pairwise conclusions, tiers, verdict and notes; interim while running.

    JSON by default (the ``Report`` schema); ``?format=csv`` (or ``Accept: text/csv``) one row
    per variant (``&table=pairwise``: one per tested pair, with its conclusion), ``md``
    Markdown, ``text`` a terminal table.
    """
    kind = _report_format(request, fmt)
    if kind == "json":
        return Response(stored_report_json(comparison.id), media_type="application/json")
    body = stored_report(comparison.id).report
    if kind == "csv":
        if table == "pairwise":
            csv_text = rows_to_csv(pairwise_rows(body), PAIRWISE_ROW_COLUMNS)
        else:
            csv_text = rows_to_csv(report_rows(body), REPORT_ROW_COLUMNS)
        return PlainTextResponse(
            csv_text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="report-{comparison.id}.csv"'},
        )
    if kind == "md":
        return PlainTextResponse(
            render_markdown(body, title=comparison.name), media_type="text/markdown; charset=utf-8"
        )
    return PlainTextResponse(render_text(body))


@router.get(
    "/{comparison_id}/report.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def report_png(comparison: ComparisonOnlyDep) -> Response:
    """Learning curves and the per-seed spread of the primary metric, with the verdict."""
    stored = stored_report(comparison.id)
    return Response(
        render_png(stored.report, stored.trials, title=comparison.name), media_type="image/png"
    )


@router.get(
    "/{comparison_id}/tuning.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "No tuning stage."}},
)
def tuning_png(comparison: ComparisonOnlyDep) -> Response:
    """Each variant's expected best validation score against the tuning budget (Dodge et
    al.), with one standard deviation: a curve still rising at the budget says the budget
    was not enough. 404 for a comparison without a tuning stage."""
    spec = tuning_spec_of(comparison.spec)
    if spec is None:
        raise NotFound(f"comparison {comparison.id} has no tuning stage, so no tuning.png")
    with session_scope() as session:  # read, then draw with no connection held
        observations = load_tuning_observations(session, comparison.id, spec.metric)
    png = render_tuning_png(
        budget_curves(spec, observations),
        metric=spec.metric,
        order=comparison.spec.variant_names,
        title=f"{comparison.name}: expected best {spec.metric} by tuning budget",
    )
    return Response(png, media_type="image/png")


def _snapshot(comparison_id: str, epochs_seen: dict[str, int]) -> dict[str, Any]:
    """The comparison's state now, and the epoch rows newer than those already sent."""
    with session_scope() as s:
        c = s.get(Comparison, comparison_id)
        if c is None:
            raise NotFound(f"No comparison {comparison_id!r}.")
        trials = trial_states(s, comparison_id)
        new_epochs = epochs_since(s, trials, epochs_seen)
        # The same fields as the comparison resource's ``progress``.
        counts = progress_of(s, [comparison_id])[comparison_id]
        progress = comparison_out(c, counts).progress.model_dump()
        return {
            "id": comparison_id,
            "status": c.status,
            "progress": progress,
            "trials": trials,
            "epochs": new_epochs,
            "error": c.error,
        }


def _sse(event: str, data: Any, event_id: int) -> str:
    # Timestamps as everywhere else (core.timestamps): 2026-12-03T06:40:17.123456Z.
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, default=json_default)}\n\n"


class _Story:
    """One stream's cursor: turns snapshots into the events this client has not seen yet."""

    def __init__(self) -> None:
        self.epochs_seen: dict[str, int] = {}
        self.trial_status: dict[str, str] = {}
        self.started_ids: set[str] = set()
        self.last_progress: dict[str, Any] | None = None
        self.event_id = 0
        self.finished = False

    def events(self, snap: dict[str, Any]) -> list[str]:
        out: list[tuple[str, Any]] = []
        epochs_of: dict[str, list[dict[str, Any]]] = {}
        for row in snap["epochs"]:
            epochs_of.setdefault(row["trial_id"], []).append(row)
        # Per trial, in story order: started, its new epochs, finished. A trial that went
        # from queued to finished between two reads (or before the client connected) still
        # gets its trial_started, as long as it ever started.
        for t in snap["trials"]:
            before = self.trial_status.get(t["id"])
            now = t["status"]
            started = (
                now == TrialStatus.RUNNING or t["started_at"] is not None or t["epochs_done"] > 0
            )
            if t["id"] not in self.started_ids and started:
                self.started_ids.add(t["id"])
                out.append(("trial_started", {**t, "status": TrialStatus.RUNNING}))
            for row in epochs_of.get(t["id"], ()):
                if row["epoch"] > self.epochs_seen.get(t["id"], 0):
                    self.epochs_seen[t["id"]] = row["epoch"]
                    out.append(("epoch", row))
            if before != now:
                self.trial_status[t["id"]] = now
                if now in TERMINAL:
                    out.append(("trial_finished", t))
        # A new status alone is news too: the last trial's end and the comparison's own end
        # can fall in different reads, and a client's last progress must say how it ended.
        progress = {"status": snap["status"], **snap["progress"]}
        if progress != self.last_progress:
            self.last_progress = progress
            out.append(("progress", progress))
        if snap["status"] in TERMINAL:
            self.finished = True
            out.append(
                (
                    "comparison_finished",
                    {"id": snap["id"], "status": snap["status"], "error": snap["error"]},
                )
            )
        chunks = []
        for name, data in out:
            self.event_id += 1
            chunks.append(_sse(name, data, self.event_id))
        return chunks


async def _events(hub: EventHub, comparison_id: str) -> AsyncIterator[str]:
    story = _Story()
    async with hub.subscribe(comparison_id) as subscription:
        while not story.finished:
            snap = await subscription.next(KEEPALIVE_SECONDS)
            if snap is None:
                return  # the feed dropped this stream (it stopped reading); reconnect replays
            if snap is False:
                yield ": keep-alive\n\n"
                continue
            assert isinstance(snap, dict)
            for chunk in story.events(snap):
                yield chunk


def event_hub(app: Any) -> EventHub:
    """The app's event hub, made on first use (it needs the running event loop)."""
    hub: EventHub | None = getattr(app.state, "event_hub", None)
    # One hub per event loop: a test client may serve the same app from a new loop.
    if hub is None or hub.loop is not asyncio.get_running_loop():
        settings = get_settings()
        hub = app.state.event_hub = EventHub(
            _snapshot,
            interval=EVENT_POLL_SECONDS,
            readers=settings.stream_db_readers,
            terminal=frozenset(TERMINAL),
        )
    return hub


def stream_limits(app: Any) -> StreamLimits:
    limits: StreamLimits | None = getattr(app.state, "stream_limits", None)
    if limits is None:
        settings = get_settings()
        limits = app.state.stream_limits = StreamLimits(
            settings.max_streams_per_tenant, settings.max_streams
        )
    return limits


def _find(tenant: str, comparison_id: str) -> str:
    with session_scope() as s:
        return find_comparison(s, tenant, comparison_id).id


@router.get(
    "/{comparison_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, comparison_id: ComparisonId, tenant: TenantDep) -> Response:
    """Server-sent events: trial_started, epoch, trial_finished, progress, comparison_finished.

    The stream first replays what already happened, then follows the comparison live, and
    ends when it does. Open streams are limited per tenant and per api process (429 beyond).
    """
    found = await run_in_threadpool(_find, tenant, comparison_id)
    limits = stream_limits(request.app)
    limits.acquire(tenant)
    return LimitedStreamingResponse(
        _events(event_hub(request.app), found),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        release=lambda: limits.release(tenant),
    )
