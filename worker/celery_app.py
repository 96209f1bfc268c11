"""The worker's Celery app: the shared long-task settings from ``core.queue`` plus our tasks.

TensorFlow is imported inside the worker's child processes on first use, never here: the
Celery parent forks its pool, and TensorFlow is not fork-safe. The parent runs the sweeper
(``core.sweeper``) in a thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    task_postrun,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from core.config import get_settings
from core.db import dispose_engine
from core.logging import configure_logging
from core.queue import celery_config, tune_sql_transport
from core.sweeper import sweep

__all__ = ["app"]

log = logging.getLogger("archbench.worker")

tune_sql_transport()
app = Celery("archbench", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))

_stop_sweeper = threading.Event()


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Celery's own log lines go through archbench's formatter (JSON unless on a terminal)."""
    configure_logging("worker")


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    dispose_engine()


def _sweep_forever() -> None:
    settings = get_settings()
    while not _stop_sweeper.wait(settings.sweep_seconds):
        try:
            sweep(settings, app=app)
        except Exception:
            log.exception("sweep failed; trying again in %.0f s", settings.sweep_seconds)


def _deliver_webhooks_forever() -> None:
    """Webhooks owed by ended comparisons (core.webhooks), on their own short cadence."""
    from core.webhooks import deliver_due

    settings = get_settings()
    while not _stop_sweeper.wait(settings.webhook_poll_seconds):
        try:
            deliver_due(settings)
        except Exception:
            log.exception("webhook delivery pass failed; trying again")


@task_postrun.connect
def _log_trial_to_mlflow(args: Any = None, retval: Any = None, **_: Any) -> None:
    """With ARCHBENCH_MLFLOW_TRACKING_URI set, log each trial this child ended to MLflow."""
    settings = get_settings()
    if settings.mlflow_tracking_uri and args and retval in ("succeeded", "failed", "cancelled"):
        from worker.mlflow_live import log_trial

        log_trial(str(args[0]), settings)


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    """Start the sweeper thread in the worker's main process."""
    threading.Thread(target=_sweep_forever, name="archbench-sweeper", daemon=True).start()
    threading.Thread(
        target=_deliver_webhooks_forever, name="archbench-webhooks", daemon=True
    ).start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    _stop_sweeper.set()
