"""Worker heartbeats: every worker process says it is alive, whether it trains or not.

A thread in each worker's main process (started by ``worker.celery_app`` when Celery is ready)
rewrites the process's row of ``worker_heartbeats`` every ``worker_heartbeat_seconds``: its
Celery node name, host, pid, concurrency and its pool's child pids. The row lives in the shared
database, so ``/metrics`` sees every worker of the embedded deployment (SQLite) and of the
distributed one (Postgres, any number of machines) without a worker exposing a port. A clean
stop deletes the row; a crashed worker's row stays, ageing, until ``STALE_AFTER`` has passed.

A row is keyed by (host, pid), and the host is ``host_identity()``: the hostname, plus the PID
namespace when the process is not in the machine's own (a container). Two containers under
host networking share the hostname and number their processes alike (the worker is pid 7 in
both), so the hostname alone made them one row and one series in ``/metrics``. Node names
ending in ``@<hostname>`` are qualified the same way (``qualified_name``), and a trial's
``worker`` (``host:pid``) uses the same identity.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from core.store.db import session_scope, upsert_insert
from core.store.tables import WorkerHeartbeat, utcnow

__all__ = [
    "STALE_AFTER",
    "Heartbeat",
    "beat",
    "forget",
    "host_identity",
    "pool_description",
    "qualified_name",
]

log = logging.getLogger("archbench.worker")

STALE_AFTER = timedelta(days=1)  # rows of workers silent this long are deleted
# The inode of the machine's initial PID namespace (the kernel's PROC_PID_INIT_INO).
INITIAL_PID_NAMESPACE = "4026531836"


@functools.cache
def host_identity() -> str:
    """This machine's hostname, and ``/pidns-<inode>`` when this process runs in a PID
    namespace of its own (a container): unique per container even where hostnames are not."""
    host = socket.gethostname()
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026532207]"
    except OSError:  # not Linux, or no /proc
        return host
    inode = link.rpartition("[")[2].rstrip("]")
    return host if inode in ("", INITIAL_PID_NAMESPACE) else f"{host}/pidns-{inode}"


def qualified_name(name: str) -> str:
    """A Celery node name ``x@<hostname>`` as ``x@<host_identity()>``; others unchanged."""
    host = socket.gethostname()
    if name.endswith(f"@{host}"):
        return name[: -len(host)] + host_identity()
    return name


def beat(name: str, concurrency: int, processes: list[int]) -> None:
    """Write (insert or update) this process's heartbeat row, and drop long-silent ones."""
    now = utcnow()
    row = {
        "hostname": host_identity(),
        "pid": os.getpid(),
        "name": qualified_name(name),
        "concurrency": concurrency,
        "processes": processes,
        "started_at": now,
        "last_seen": now,
    }
    with session_scope() as s:
        stmt = upsert_insert(s, WorkerHeartbeat).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["hostname", "pid"],
            set_={
                "name": stmt.excluded.name,
                "concurrency": stmt.excluded.concurrency,
                "processes": stmt.excluded.processes,
                "last_seen": stmt.excluded.last_seen,
            },
        )
        s.execute(stmt)
        s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen < now - STALE_AFTER))
        s.commit()


def forget() -> None:
    """Delete this process's heartbeat row (a clean stop: the worker is gone, not silent)."""
    with session_scope() as s:
        s.execute(
            delete(WorkerHeartbeat).where(
                WorkerHeartbeat.hostname == host_identity(),
                WorkerHeartbeat.pid == os.getpid(),
            )
        )
        s.commit()


class Heartbeat:
    """Beats at once, then every ``interval`` seconds from a daemon thread, until ``stop()``.

    ``describe`` returns (name, concurrency, child pids) at each beat: a pool replaces a child
    that died, so its pids are read afresh every time.
    """

    def __init__(self, describe: Callable[[], tuple[str, int, list[int]]], interval: float) -> None:
        self.describe = describe
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archbench-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and delete this process's row."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        try:
            forget()
        except Exception as exc:
            log.warning("could not delete this worker's heartbeat row: %s", exc)

    def _run(self) -> None:
        failures = 0
        while True:
            try:
                beat(*self.describe())
                failures = 0
            except Exception as exc:  # a database blip: the next beat tries again
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("worker heartbeat failed (%d in a row): %s", failures, exc)
            if self._stop.wait(self.interval):
                return


def pool_description(consumer: Any, default_concurrency: int) -> tuple[list[int], int]:
    """(child pids, concurrency) of a Celery consumer's pool; empty pids if it cannot tell."""
    try:
        info = consumer.pool.info
        processes = [int(p) for p in info.get("processes", [])]
        concurrency = int(info.get("max-concurrency") or default_concurrency)
    except Exception:
        return [], default_concurrency
    return processes, concurrency
