"""The Celery side shared by api and worker: one set of settings, and enqueue by task name.

The api imports this module, never ``worker``: it sends ``archbench.train_trial`` by name,
so the api process never loads TensorFlow. A message carries only a trial id; the database
row is the truth, and a lost message is found again by the sweeper.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import Celery

from core.config import Settings, get_settings

__all__ = [
    "QUEUE",
    "SWEEP_TASK",
    "TRAIN_TASK",
    "celery_config",
    "client_app",
    "enqueue_trials",
    "tune_sql_transport",
]

log = logging.getLogger("archbench.queue")

TRAIN_TASK = "archbench.train_trial"
SWEEP_TASK = "archbench.sweep"
QUEUE = "archbench"


def _transport_options(broker_url: str, visibility: int) -> dict[str, Any]:
    if broker_url.startswith("redis"):
        return {"visibility_timeout": visibility}
    return {}


def tune_sql_transport() -> None:
    """Poll the embedded SQL broker every 0.1 s instead of every second.

    The default 1 s would add up to a second to every trial. kombu's SQLAlchemy transport
    hands every transport option to ``create_engine`` (so ``polling_interval`` cannot go
    there); the interval is a class attribute of the transport instead.
    """
    from kombu.transport import sqlalchemy as sqla

    sqla.Transport.polling_interval = 0.1


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for long training tasks, all in one place, each with its reason."""
    # A trial may legitimately run for trial_max_seconds; the broker must not hand its message
    # to a second worker before then, or the same trial would be delivered twice while running.
    visibility = settings.trial_max_seconds + 3600
    return {
        "broker_url": settings.broker_url,
        # JSON only: a pickle message is code execution for whoever can write to the broker.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # State lives in the database; no result backend.
        "task_ignore_result": True,
        "result_backend": None,
        # Ack after the task ran, so a worker that dies mid-trial leaves the message to redeliver.
        "task_acks_late": True,
        # A worker child killed by the OS (OOM, SIGKILL) requeues the message; the attempt
        # count in the trials table caps how often that can happen.
        "task_reject_on_worker_lost": True,
        # One message at a time per process: trials are long and must not wait behind others.
        "worker_prefetch_multiplier": 1,
        # Keep TensorFlow warm: a child process serves trial after trial.
        "worker_max_tasks_per_child": None,
        # If the broker connection drops, running tasks stop; their messages are redelivered
        # and the lease in the database decides who continues.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings.broker_url, visibility),
        "task_default_queue": QUEUE,
        # Publishing must not hang an HTTP request when the broker is down: fail fast and let
        # the sweeper enqueue later.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_timeout": 2,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


@functools.cache
def client_app() -> Celery:
    """A Celery app that only sends messages (used by the api)."""
    tune_sql_transport()
    app = Celery("archbench-client")
    app.conf.update(celery_config(get_settings()))
    return app


def enqueue_trials(trial_ids: list[str], app: Celery | None = None) -> list[str]:
    """Send one message per trial; returns the ids that were sent (others wait for the sweeper)."""
    app = app or client_app()
    sent: list[str] = []
    for trial_id in trial_ids:
        try:
            app.send_task(TRAIN_TASK, args=[trial_id], queue=QUEUE)
        except Exception as exc:  # broker down: the sweeper enqueues these later
            log.warning("could not enqueue trial %s: %s", trial_id, exc)
            break
        sent.append(trial_id)
    return sent
