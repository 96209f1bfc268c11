"""Prometheus metrics: HTTP requests measured in this process, the rest read from the database.

Two kinds of series, on purpose:

- ``archbench_http_requests_total`` and ``archbench_http_request_duration_seconds`` (by
  method, route template and status) are counted by an ASGI middleware in the api process.
  With several uvicorn workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder that
  only this api uses (wiped at every start): the scrape then sums all worker processes.
  Without it, each scrape sees the one process that answered it.
- Everything about the work (comparisons and trials by status, running trials per worker,
  epoch durations, worker heartbeats, queue depth) is read from Postgres and the broker at
  scrape time. The database is shared by every process, so these are right however many
  api and worker processes there are, and no worker needs to expose a port.

Workers: ``archbench_worker_heartbeat_timestamp_seconds{worker,pid}`` is written by every
worker process every ``ARCHBENCH_WORKER_HEARTBEAT_SECONDS`` whether it trains or not (alert
when ``time() -`` it grows past a few intervals; a cleanly stopped worker's series goes away),
with ``archbench_worker_concurrency`` beside it and ``archbench_worker_trials{worker,status}``
counting the trials its current processes ran, by status. The older per-process series
(``archbench_worker_running_trials`` and ``archbench_worker_last_seen_timestamp_seconds``,
labelled host:pid of the child process) come from the trials table.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from core.config import Settings, get_settings
from core.logging import log_context
from core.store.db import session_scope
from core.trials.monitoring import (
    comparisons_by_status,
    epoch_durations,
    last_epoch_by_worker,
    lease_expiry_by_worker,
    running_by_worker,
    trials_by_process,
    trials_by_status,
    worker_heartbeats,
)
from core.trials.queue import QUEUE

__all__ = [
    "CONTENT_TYPE",
    "EPOCH_BUCKETS",
    "RequestMetricsMiddleware",
    "queue_depth",
    "render_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EPOCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
QUEUE_TIMEOUT_S = 1.0
_COMPARISON_PATH = re.compile(r"^/v1/comparisons/([0-9a-fA-F-]{36})(?:/|$)")

_REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "archbench_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=_REQUEST_REGISTRY,
)
LATENCY = Histogram(
    "archbench_http_request_duration_seconds",
    "Time to the response's first byte (streams are not timed to their end).",
    ["method", "route"],
    registry=_REQUEST_REGISTRY,
)

ASGIApp = Any

access_log = logging.getLogger("archbench.api.access")


class RequestMetricsMiddleware:
    """Counts requests and times them by route template; sets the log context's comparison id.

    It also logs one line per request on ``archbench.api.access`` (uvicorn's own access log is
    off): method, route template, status and milliseconds to the first byte, and the
    ``comparison_id`` of a path under ``/v1/comparisons/{id}``. The raw path is not logged: a
    query string may carry what a log should not keep.
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Wrap one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        timed = False

        def observe() -> None:
            nonlocal timed
            if timed:
                return
            timed = True
            route = getattr(scope.get("route"), "path", None) or _plain_route(scope)
            method = scope.get("method", "GET")
            elapsed = time.perf_counter() - start
            LATENCY.labels(method, route).observe(elapsed)
            REQUESTS.labels(method, route, str(status)).inc()
            if self.access_log and access_log.isEnabledFor(logging.INFO):
                ms = round(elapsed * 1000, 2)
                access_log.info(
                    "%s %s %d %.1f ms",
                    method,
                    route,
                    status,
                    ms,
                    extra={"method": method, "route": route, "status": status, "duration_ms": ms},
                )

        async def _send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                observe()
            await send(message)

        match = _COMPARISON_PATH.match(scope.get("path", ""))
        with log_context(comparison_id=match.group(1) if match else None):
            try:
                await self.app(scope, receive, _send)
            finally:
                observe()


def _plain_route(scope: dict[str, Any]) -> str:
    """A matched Starlette route without a template of its own (``/openapi.json``) is its path;
    anything else that matched nothing is ``unmatched`` (never the raw path: label explosion)."""
    if scope.get("endpoint") is not None and not scope.get("path_params"):
        return str(scope.get("path", "unmatched"))
    return "unmatched"


@functools.cache
def _broker_engine(url: str) -> Engine:
    return create_engine(url, connect_args={"timeout": QUEUE_TIMEOUT_S}, pool_pre_ping=True)


def queue_depth(settings: Settings) -> float | None:
    """Messages waiting in the ``archbench`` queue; None when the broker does not answer fast."""
    url = settings.broker_url
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=QUEUE_TIMEOUT_S, socket_connect_timeout=QUEUE_TIMEOUT_S
            )
            try:
                return float(client.llen(QUEUE))
            finally:
                client.close()
        if url.startswith("sqla+sqlite"):
            with _broker_engine(url.removeprefix("sqla+")).connect() as conn:
                n = conn.execute(
                    text(
                        "SELECT count(*) FROM kombu_message m JOIN kombu_queue q "
                        "ON m.queue_id = q.id WHERE q.name = :q AND m.visible"
                    ),
                    {"q": QUEUE},
                ).scalar()
                return float(n or 0)
    except Exception:
        return None
    return None


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[Any, ...]]) -> Metric:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for *values, n in rows:
        g.add_metric([str(v) for v in values], float(n or 0))
    return g


class DatabaseCollector(Collector):
    """Series computed from the shared database (and broker) at scrape time."""

    def collect(self) -> Iterator[Metric]:
        """Yield every database-derived metric family."""
        settings = get_settings()
        with session_scope() as s:
            yield _gauge(
                "archbench_comparisons",
                "Comparisons by status.",
                ["status"],
                comparisons_by_status(s),
            )
            yield _gauge(
                "archbench_trials",
                "Trials by status.",
                ["status"],
                trials_by_status(s),
            )
            yield _gauge(
                "archbench_worker_running_trials",
                "Running trials by worker process (host:pid).",
                ["worker"],
                running_by_worker(s),
            )
            yield self._heartbeats(s, settings)
            yield from self._workers(s)
            yield self._epoch_histogram(s)
        depth = queue_depth(settings)
        up = GaugeMetricFamily(
            "archbench_broker_up", "1 when the broker answered the queue-depth query in time."
        )
        up.add_metric([], 0.0 if depth is None else 1.0)
        yield up
        if depth is not None:
            q = GaugeMetricFamily(
                "archbench_queue_depth", "Messages waiting in the broker queue.", labels=["queue"]
            )
            q.add_metric([QUEUE], depth)
            yield q

    @staticmethod
    def _heartbeats(s: Any, settings: Settings) -> Metric:
        """Per worker: the last sign of life (lease renewal of a running trial, or last epoch)."""
        g = GaugeMetricFamily(
            "archbench_worker_last_seen_timestamp_seconds",
            "Unix time of a worker's last lease renewal or finished epoch (workers with work).",
            labels=["worker"],
        )
        seen: dict[str, float] = {}
        for worker, expires in lease_expiry_by_worker(s):
            if expires is not None:
                seen[worker] = _ts(expires) - settings.lease_seconds
        for worker, recorded in last_epoch_by_worker(s):
            if recorded is not None:
                seen[worker] = max(seen.get(worker, 0.0), _ts(recorded))
        for worker, ts in sorted(seen.items()):
            g.add_metric([worker], ts)
        return g

    @staticmethod
    def _workers(s: Any) -> Iterator[Metric]:
        """Every worker process's heartbeat and concurrency, and its processes' trials by status."""
        beats = GaugeMetricFamily(
            "archbench_worker_heartbeat_timestamp_seconds",
            "Unix time of each worker's last heartbeat (written busy or idle).",
            labels=["worker", "pid"],
        )
        slots = GaugeMetricFamily(
            "archbench_worker_concurrency",
            "Trials each worker runs at once (its pool processes).",
            labels=["worker", "pid"],
        )
        owner: dict[str, str] = {}  # "host:pid" of a process -> its worker's name
        for name, host, pid, concurrency, processes, last_seen in worker_heartbeats(s):
            beats.add_metric([name, str(pid)], _ts(last_seen))
            slots.add_metric([name, str(pid)], float(concurrency))
            for p in [pid, *(processes or [])]:
                owner[f"{host}:{p}"] = name
        yield beats
        yield slots
        trials = GaugeMetricFamily(
            "archbench_worker_trials",
            "Trials run by each live worker's current processes, by status.",
            labels=["worker", "status"],
        )
        counts: dict[tuple[str, str], float] = {}
        if owner:
            for process, status, n in trials_by_process(s, list(owner)):
                key = (owner[process], status)
                counts[key] = counts.get(key, 0.0) + float(n)
        for (name, status), total in sorted(counts.items()):
            trials.add_metric([name, status], total)
        yield trials

    @staticmethod
    def _epoch_histogram(s: Any) -> Metric:
        """Every stored epoch's duration, as a cumulative histogram (one aggregate query)."""
        count, total, cumulative = epoch_durations(s, EPOCH_BUCKETS)
        buckets = [(_le(b), float(n)) for b, n in zip(EPOCH_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", float(count)))
        h = HistogramMetricFamily(
            "archbench_epoch_duration_seconds", "Wall time of each finished training epoch."
        )
        h.add_metric([], buckets, sum_value=total)
        return h


def _le(bound: float) -> str:
    return repr(float(bound))


def _ts(value: Any) -> float:
    return float(value.timestamp())


def render_metrics() -> bytes:
    """The Prometheus text exposition for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_RequestCollector())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


class _RequestCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _REQUEST_REGISTRY.collect()
