"""The training task's delivery settings come from core.queue.celery_config, applied for real."""

from __future__ import annotations

from core.queue import TRAIN_TASK


def test_the_training_task_acks_late_and_is_rejected_when_its_worker_dies() -> None:
    from worker.celery_app import app
    from worker.tasks import train_trial_task

    task = app.tasks[TRAIN_TASK]
    assert task.name == train_trial_task.name
    # Set once, in core.queue (the decorator repeats none of them), and in force on the task.
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.ignore_result is True
    assert app.conf.worker_prefetch_multiplier == 1
