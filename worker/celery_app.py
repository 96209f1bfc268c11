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
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core.config import get_settings
from core.db import dispose_engine
from core.queue import celery_config, tune_sql_transport
from core.sweeper import sweep

__all__ = ["app"]

log = logging.getLogger("archbench.worker")

tune_sql_transport()
app = Celery("archbench", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))

_stop_sweeper = threading.Event()


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


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    """Start the sweeper thread in the worker's main process."""
    threading.Thread(target=_sweep_forever, name="archbench-sweeper", daemon=True).start()


@worker_shutdown.connect
def _stop(**_: Any) -> None:
    _stop_sweeper.set()
