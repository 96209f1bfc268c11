"""The training task's delivery settings come from core.trials.queue.celery_config, applied
for real."""

from __future__ import annotations

from core.trials.queue import TRAIN_TASK


def test_the_training_task_acks_late_and_is_rejected_when_its_worker_dies() -> None:
    from worker.celery_app import app
    from worker.tasks import train_trial_task

    task = app.tasks[TRAIN_TASK]
    assert task.name == train_trial_task.name
    # Set once, in core.trials.queue (the decorator repeats none of them), and in force on the task.
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.ignore_result is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_only_passing_database_errors_are_retried() -> None:
    """A schema error is not an outage: on SQLite it is an OperationalError too, and retrying
    it would hand the message back to the queue forever."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from worker.db_retries import transient as _transient

    def sqlite_error(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert _transient(sqlite_error("database is locked"))
    assert _transient(sqlite_error("disk I/O error"))
    assert not _transient(sqlite_error("no such table: trials"))
    assert not _transient(sqlite_error("no such column: trials.lease_owner"))
    assert _transient(OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")))
