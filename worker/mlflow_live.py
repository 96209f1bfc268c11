"""Live MLflow logging: with ``ARCHBENCH_MLFLOW_TRACKING_URI`` set, each trial a worker
finishes is logged as an MLflow run right away (see ``core.mlflow_export``)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from core.config import Settings
from core.db import session_scope
from core.mlflow_export import export_runs
from core.tables import Comparison, EpochMetric, Trial

__all__ = ["log_trial", "trial_rows"]

log = logging.getLogger("archbench.mlflow")

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


def trial_rows(
    trial_id: str,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The comparison, the trial and its epochs as the api would show them; None if missing."""
    with session_scope() as s:
        trial = s.get(Trial, trial_id)
        if trial is None:
            return None
        comparison = s.get(Comparison, trial.comparison_id)
        assert comparison is not None
        row: dict[str, Any] = {k: getattr(trial, k) for k in TRIAL_KEYS}
        for key in ("started_at", "finished_at"):
            value = getattr(trial, key)
            row[key] = value.isoformat() if value else None
        epochs = [
            {"trial_id": trial_id, "epoch": epoch, **values, "seconds": seconds}
            for epoch, values, seconds in s.execute(
                select(EpochMetric.epoch, EpochMetric.values, EpochMetric.seconds)
                .where(EpochMetric.trial_id == trial_id)
                .order_by(EpochMetric.epoch)
            )
        ]
        info = {"id": comparison.id, "name": comparison.name, "spec": comparison.spec}
        return info, [row], epochs


def log_trial(trial_id: str, settings: Settings) -> list[str]:
    """Log one ended trial to the configured MLflow store; never raises (it logs instead)."""
    try:
        rows = trial_rows(trial_id)
        if rows is None:
            return []
        comparison, trials, epochs = rows
        return export_runs(settings.mlflow_tracking_uri, comparison, trials, epochs)
    except Exception:
        log.exception("trial %s: logging to MLflow failed", trial_id)
        return []
