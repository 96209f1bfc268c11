"""The reads behind the Prometheus series of ``/metrics`` (api/metrics.py renders them).

Each function is one aggregate query over the shared database, run at scrape time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.status import TrialStatus
from core.store.tables import Comparison, EpochMetric, Trial, WorkerHeartbeat

__all__ = [
    "comparisons_by_status",
    "epoch_durations",
    "last_epoch_by_worker",
    "lease_expiry_by_worker",
    "running_by_worker",
    "trials_by_process",
    "trials_by_status",
    "worker_heartbeats",
]


def comparisons_by_status(s: Session) -> list[tuple[str, int]]:
    """(status, count) of every comparison status present."""
    return [
        (st, n)
        for st, n in s.execute(
            select(Comparison.status, func.count()).group_by(Comparison.status)
        ).tuples()
    ]


def trials_by_status(s: Session) -> list[tuple[str, int]]:
    """(status, count) of every trial status present."""
    return [
        (st, n)
        for st, n in s.execute(select(Trial.status, func.count()).group_by(Trial.status)).tuples()
    ]


def _over_running_trials(s: Session, value: Any) -> list[tuple[str, Any]]:
    """(worker process "host:pid", ``value`` aggregated over its running trials)."""
    return [
        (str(w), v)  # never None: the query leaves those out
        for w, v in s.execute(
            select(Trial.worker, value)
            .where(Trial.status == TrialStatus.RUNNING, Trial.worker.is_not(None))
            .group_by(Trial.worker)
        ).tuples()
    ]


def running_by_worker(s: Session) -> list[tuple[str, int]]:
    """(worker process "host:pid", running trials) of each process running some."""
    return _over_running_trials(s, func.count())


def lease_expiry_by_worker(s: Session) -> list[tuple[str, datetime | None]]:
    """(worker process, the latest lease expiry of its running trials)."""
    return _over_running_trials(s, func.max(Trial.lease_expires_at))


def last_epoch_by_worker(s: Session) -> list[tuple[str, datetime | None]]:
    """(worker process, when it last recorded an epoch of a running or succeeded trial)."""
    return [
        (str(w), r)  # never None: the query leaves those out
        for w, r in s.execute(
            select(Trial.worker, func.max(EpochMetric.recorded_at))
            .join(Trial, Trial.id == EpochMetric.trial_id)
            .where(
                Trial.worker.is_not(None),
                Trial.status.in_((TrialStatus.RUNNING, TrialStatus.SUCCEEDED)),
            )
            .group_by(Trial.worker)
        ).tuples()
    ]


def worker_heartbeats(s: Session) -> list[Any]:
    """Every worker process's heartbeat row: (name, hostname, pid, concurrency, processes,
    last_seen), by name and pid."""
    return list(
        s.execute(
            select(
                WorkerHeartbeat.name,
                WorkerHeartbeat.hostname,
                WorkerHeartbeat.pid,
                WorkerHeartbeat.concurrency,
                WorkerHeartbeat.processes,
                WorkerHeartbeat.last_seen,
            ).order_by(WorkerHeartbeat.name, WorkerHeartbeat.pid)
        )
    )


def trials_by_process(s: Session, processes: Sequence[str]) -> list[tuple[str, str, int]]:
    """(worker process, status, count) of the trials the given processes ran."""
    return [
        (str(w), st, n)  # never None: only the given processes
        for w, st, n in s.execute(
            select(Trial.worker, Trial.status, func.count())
            .where(Trial.worker.in_(list(processes)))
            .group_by(Trial.worker, Trial.status)
        ).tuples()
    ]


def epoch_durations(s: Session, buckets: Sequence[float]) -> tuple[int, float, list[int]]:
    """(count, sum of seconds, cumulative count at or below each bucket) of every stored
    epoch duration, in one aggregate query."""
    secs = EpochMetric.seconds
    columns: list[Any] = [func.count(secs), func.coalesce(func.sum(secs), 0.0)]
    columns += [func.sum(case((secs <= b, 1), else_=0)) for b in buckets]
    row = s.execute(select(*columns).where(secs.is_not(None))).one()
    return int(row[0]), float(row[1]), [int(x or 0) for x in row[2:]]
