"""The worker's Celery app: the shared long-task settings from ``core.trials.queue`` plus our tasks.

TensorFlow is imported inside the worker's child processes on first use, never here: the
Celery parent forks its pool, and TensorFlow is not fork-safe. The parent runs, each in a
thread: the sweeper (``core.trials.sweeper``), webhook delivery (``core.trials.webhooks``), the
worker's
heartbeat (``worker.heartbeat``) and, when ``ARCHBENCH_MLFLOW_TRACKING_URI`` is set, live
MLflow logging of ended trials (``worker.mlflow_live``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from core.config import get_settings
from core.logging import configure_logging
from core.store.db import dispose_engine
from core.trials.queue import celery_config, tune_sql_transport
from core.trials.sweeper import sweep
from worker.heartbeat import Heartbeat, pool_description

__all__ = ["app"]

log = logging.getLogger("archbench.worker")

tune_sql_transport()
app = Celery("archbench", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))

_stop_sweeper = threading.Event()
_heartbeat: Heartbeat | None = None


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Celery's own log lines go through archbench's formatter (JSON unless on a terminal)."""
    configure_logging("worker")


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    dispose_engine()


def _every(seconds: float, work: Callable[[], object], failed: str) -> None:
    """Run ``work`` every ``seconds`` until the worker shuts down; a pass that raises is
    logged (``failed``) and the next one comes on time."""
    while not _stop_sweeper.wait(seconds):
        try:
            work()
        except Exception:
            log.exception(failed)


def _sweep_forever() -> None:
    settings = get_settings()
    _every(
        settings.sweep_seconds,
        lambda: sweep(settings, app=app),
        f"sweep failed; trying again in {settings.sweep_seconds:.0f} s",
    )


def _deliver_webhooks_forever() -> None:
    """Webhooks owed by ended comparisons (core.trials.webhooks), on their own short cadence."""
    from core.trials.webhooks import deliver_due

    settings = get_settings()
    _every(
        settings.webhook_poll_seconds,
        lambda: deliver_due(settings),
        "webhook delivery pass failed; trying again",
    )


def _log_to_mlflow_forever() -> None:
    """Every ended trial not yet in MLflow, however it ended (worker.mlflow_live)."""
    from worker.mlflow_live import log_due

    settings = get_settings()
    _every(
        settings.mlflow_poll_seconds,
        lambda: log_due(settings),
        "MLflow logging pass failed; trying again",
    )


@worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """Start the main process's threads: sweeper, webhooks, heartbeat, live MLflow."""
    global _heartbeat
    settings = get_settings()
    threading.Thread(target=_sweep_forever, name="archbench-sweeper", daemon=True).start()
    threading.Thread(
        target=_deliver_webhooks_forever, name="archbench-webhooks", daemon=True
    ).start()
    if settings.mlflow_tracking_uri:
        threading.Thread(
            target=_log_to_mlflow_forever, name="archbench-mlflow", daemon=True
        ).start()
    name = str(getattr(sender, "hostname", None) or "archbench")
    default = int(app.conf.worker_concurrency or 1)

    def describe() -> tuple[str, int, list[int]]:
        processes, concurrency = pool_description(sender, default)
        return name, concurrency, processes

    _heartbeat = Heartbeat(describe, settings.worker_heartbeat_seconds).start()


@worker_shutting_down.connect
def _leaving(**_: Any) -> None:
    """A warm shutdown takes no new work while it waits for running trials: its heartbeat
    (the sweeper counts heartbeats as capacity for re-sending lost messages) goes now. This
    runs in a signal handler: the database work goes to a thread of its own."""
    if _heartbeat is not None:
        threading.Thread(target=_heartbeat.stop, name="archbench-leaving", daemon=True).start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    _stop_sweeper.set()
    if _heartbeat is not None:
        _heartbeat.stop()
