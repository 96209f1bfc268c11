"""Live MLflow logging: with ``ARCHBENCH_MLFLOW_TRACKING_URI`` set, every ended trial is logged
as an MLflow run (see ``core.mlflow_export``), however it ended.

Driven from the database, like webhook delivery: every worker's main process runs ``log_due``
every ``mlflow_poll_seconds``. A pass finds ended trials with no row in ``mlflow_runs``, so it
also logs the trials no worker task ended: results reused at submit, trials cancelled while
queued, trials the sweeper gave up on. Per comparison it locks the trials' rows (``SKIP
LOCKED``: several workers never log the same trial), logs them, and records each in
``mlflow_runs`` in the same transaction, so a trial is logged once; if MLflow fails, nothing
is recorded and the next pass tries again. ``core.mlflow_export`` also skips a trial whose run
is already in the store (tagged with its id), so a crash between the two costs no duplicate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.db import session_scope
from core.mlflow_export import export_runs
from core.tables import TERMINAL_STATES, Comparison, EpochMetric, MlflowRun, Trial, utcnow

__all__ = ["WINDOW", "due_trials", "log_due"]

log = logging.getLogger("archbench.mlflow")

WINDOW = timedelta(days=7)  # trials that ended (or were created) longer ago are not looked at
BATCH = 200  # trials per pass at most

TRIAL_KEYS = (
    "id",
    "variant",
    "seed",
    "status",
    "params",
    "trainable_params",
    "flops",
    "epochs_done",
    "train_seconds",
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "inference_ms_per_sample",
)


def due_trials(session: Session, now: datetime, limit: int = BATCH) -> dict[str, list[str]]:
    """Ended trials not yet logged to MLflow, by comparison (oldest first).

    A reused trial carries its source's ``finished_at``, so ``created_at`` counts as recent too.
    """
    cutoff = now - WINDOW
    rows = session.execute(
        select(Trial.comparison_id, Trial.id)
        .outerjoin(MlflowRun, MlflowRun.trial_id == Trial.id)
        .where(
            MlflowRun.trial_id.is_(None),
            Trial.status.in_(TERMINAL_STATES),
            or_(Trial.finished_at >= cutoff, Trial.created_at >= cutoff),
        )
        .order_by(Trial.created_at, Trial.id)
        .limit(limit)
    )
    out: dict[str, list[str]] = defaultdict(list)
    for comparison_id, trial_id in rows:
        out[comparison_id].append(trial_id)
    return dict(out)


def _trial_row(trial: Trial) -> dict[str, Any]:
    row: dict[str, Any] = {k: getattr(trial, k) for k in TRIAL_KEYS}
    for key in ("started_at", "finished_at"):
        value = getattr(trial, key)
        row[key] = value.isoformat() if value else None
    return row


def _log_comparison(settings: Settings, comparison_id: str, trial_ids: list[str]) -> int:
    """Log one comparison's due trials and mark them, in one transaction; returns how many."""
    with session_scope() as s:
        trials = list(
            s.scalars(
                select(Trial)
                .outerjoin(MlflowRun, MlflowRun.trial_id == Trial.id)
                .where(Trial.id.in_(trial_ids), MlflowRun.trial_id.is_(None))
                .order_by(Trial.variant_index, Trial.seed)
                .with_for_update(skip_locked=True, of=Trial)
            )
        )
        trials = [t for t in trials if t.status in TERMINAL_STATES]
        if not trials:
            return 0
        comparison = s.get(Comparison, comparison_id)
        assert comparison is not None
        info = {"id": comparison.id, "name": comparison.name, "spec": comparison.spec}
        epochs = [
            {"trial_id": trial_id, "epoch": epoch, **values, "seconds": seconds}
            for trial_id, epoch, values, seconds in s.execute(
                select(
                    EpochMetric.trial_id, EpochMetric.epoch, EpochMetric.values, EpochMetric.seconds
                )
                .where(EpochMetric.trial_id.in_([t.id for t in trials]))
                .order_by(EpochMetric.trial_id, EpochMetric.epoch)
            )
        ]
        rows = [_trial_row(t) for t in trials]
        run_ids = export_runs(settings.mlflow_tracking_uri, info, rows, epochs)
        uri = settings.mlflow_tracking_uri[:1000]
        for trial, run_id in zip(trials, run_ids, strict=True):
            s.add(MlflowRun(trial_id=trial.id, run_id=run_id, tracking_uri=uri))
        s.commit()
        log.info(
            "logged %d trial(s) to MLflow",
            len(trials),
            extra={"comparison_id": comparison_id},
        )
        return len(trials)


def log_due(settings: Settings) -> int:
    """One pass: log every ended, not yet logged trial; returns how many were logged.

    Stops at the first comparison MLflow refuses (the store is down or misconfigured): the
    next pass tries again, and the log gets one line per pass, not one per trial.
    """
    if not settings.mlflow_tracking_uri:
        return 0
    with session_scope() as s:
        due = due_trials(s, utcnow())
    done = 0
    for comparison_id, trial_ids in due.items():
        try:
            done += _log_comparison(settings, comparison_id, trial_ids)
        except Exception:
            log.exception(
                "logging to MLflow failed; trying again in %.0f s",
                settings.mlflow_poll_seconds,
                extra={"comparison_id": comparison_id},
            )
            break
    return done
