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
    "BROKER_MARK",
    "QUEUE",
    "SWEEP_TASK",
    "TRAIN_TASK",
    "broker_was_reset",
    "celery_config",
    "client_app",
    "enqueue_trials",
    "tune_sql_transport",
]

log = logging.getLogger("archbench.queue")

TRAIN_TASK = "archbench.train_trial"
SWEEP_TASK = "archbench.sweep"
QUEUE = "archbench"
BROKER_MARK = "archbench:broker-mark"


_looked: set[str] = set()


def broker_was_reset(broker_url: str) -> bool:
    """True when queued trials' messages may have been lost since the last look, so the
    sweeper must send them again (a duplicate message is harmless: the claim drops it).

    Redis: a mark key lives next to the queue, and its absence means the broker lost its data
    (restarted without persistence, flushed, evicted); it also reads True the very first time.
    The embedded SQL broker keeps its messages in a file, but a worker killed while holding a
    message it had not started loses that message, so this reads True on the first look of
    each process (a restarted worker re-sends). A broker that cannot be reached reads False:
    nothing can be sent to it anyway.
    """
    if not broker_url.startswith(("redis://", "rediss://")):
        first = broker_url not in _looked
        _looked.add(broker_url)
        return first
    import redis

    try:
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=2, socket_timeout=2)
        with client:
            return bool(client.set(BROKER_MARK, "1", nx=True))
    except redis.RedisError:
        return False


def _transport_options(broker_url: str, visibility: int) -> dict[str, Any]:
    if broker_url.startswith("redis"):
        # A dead host must not hang a publish (and so an HTTP request) for minutes.
        return {"visibility_timeout": visibility, "socket_connect_timeout": 2}
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
    # A trial may legitimately run for trial_max_seconds; Redis must not hand its unacked
    # message to a second worker before then. (The lease would drop that duplicate anyway,
    # but each one costs a delivery.) There is no result backend to give the same timeout.
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
        # A worker child killed by the OS (OOM, SIGKILL) requeues its message at once. The
        # redelivery finds the dead child's lease still live and is dropped as a duplicate;
        # the sweeper takes the trial back when the lease expires, so every crash costs
        # exactly one attempt of the trials table's max_attempts, never an unbounded loop.
        "task_reject_on_worker_lost": True,
        # One message at a time per process: trials are long and must not wait behind others.
        "worker_prefetch_multiplier": 1,
        # Keep TensorFlow warm: a child process serves trial after trial.
        "worker_max_tasks_per_child": None,
        # If the broker connection drops, the worker stops its running trials (their acks
        # could not reach the broker anyway) instead of running on unaccounted; each such trial
        # is taken back by the sweeper when its lease expires and resumes from its checkpoint.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A worker started before its broker keeps trying to connect instead of exiting.
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings.broker_url, visibility),
        # One named queue, so workers of other Celery apps on the same broker never take ours.
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
        # Seconds to wait for a broker connection before calling it down (publish included).
        "broker_connection_timeout": 2,
        # Our logging setup stays ours (the cli configures it).
        "worker_hijack_root_logger": False,
        # No monitoring events: progress is in the database, and events cost broker traffic.
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
