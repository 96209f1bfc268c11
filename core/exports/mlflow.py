"""Log a comparison's trials to MLflow: one run per trial, per-epoch metrics, tags.

Used by ``archbench export ID --mlflow URI`` (from the api's JSON) and by workers with
``ARCHBENCH_MLFLOW_TRACKING_URI`` set (from the database, as each trial finishes). Each run
is tagged ``archbench.trial_id``; a trial already logged is not logged twice, so exporting
again is harmless. mlflow is optional (the ``mlflow`` extra) and imported only here, lazily.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.spec import TRAINING_KNOBS
from core.status import TERMINAL, TrialStatus

__all__ = ["ExportResult", "architecture_summary", "export_runs", "log_runs", "require_mlflow"]

RUN_STATUS: dict[str, str] = {
    TrialStatus.SUCCEEDED: "FINISHED",
    TrialStatus.FAILED: "FAILED",
    TrialStatus.CANCELLED: "KILLED",
}
FINAL_METRICS = (
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "train_seconds",
    "inference_ms_per_sample",
)
ROW_KEYS = {"trial_id", "variant", "seed", "epoch"}
KEY_ARGS = ("filters", "units", "kernel_size", "pool_size", "strides", "rate", "activation")


def require_mlflow() -> Any:
    """The mlflow module, or an ImportError that says how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ImportError(
            "MLflow export needs mlflow: pip install 'archbench[mlflow]' (or mlflow-skinny)"
        ) from None
    return mlflow


def architecture_summary(variant: Mapping[str, Any]) -> str:
    """A one-line summary of a normalised variant: ``Conv2D(filters=4, ...) > Flatten > ...``."""
    parts = []
    for layer in variant.get("layers", []):
        args = [f"{k}={layer[k]}" for k in KEY_ARGS if layer.get(k) is not None]
        parts.append(f"{layer.get('type', '?')}({', '.join(args)})" if args else layer["type"])
    return " > ".join(parts)[:500]


def _ms(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    return int(time.time() * 1000)


def _params(comparison: Mapping[str, Any], trial: Mapping[str, Any]) -> dict[str, str]:
    spec = comparison.get("spec", {})
    variants = {v.get("name"): v for v in spec.get("variants", [])}
    variant = variants.get(trial["variant"], {})
    # The variant's own training over the comparison's: what this trial trained with.
    training = {**spec.get("training", {}), **(variant.get("training") or {})}
    dataset = spec.get("dataset", {})
    out: dict[str, Any] = {
        "variant": trial["variant"],
        "seed": trial["seed"],
        "architecture": architecture_summary(variant),
        "input_shape": variant.get("input_shape"),
        "params": trial.get("params"),
        "trainable_params": trial.get("trainable_params"),
        "flops": trial.get("flops"),
        "dataset": dataset.get("name"),
        "split_seed": dataset.get("split_seed"),
        "max_samples": dataset.get("max_samples"),
        "primary_metric": spec.get("primary_metric"),
    }
    for key in ("epochs", "batch_size", "optimizer", "learning_rate", "loss", *TRAINING_KNOBS):
        out[key] = training.get(key)
    if training.get("early_stopping"):
        out["early_stopping"] = training["early_stopping"]
    return {k: str(v)[:500] for k, v in out.items() if v is not None}


@dataclass
class ExportResult:
    """What an export did: runs it logged now, runs an earlier export had logged (by trial,
    found by the ``archbench.trial_id`` tag), and trials not ended yet (not logged)."""

    experiment: str
    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    not_ended: int = 0

    @property
    def run_ids(self) -> list[str]:
        return [*self.new, *self.existing]

    def summary(self, tracking_uri: str) -> str:
        """One line for a person: what was new, what was already there, what is to come."""
        parts = [
            f"logged {len(self.new)} new run(s) to MLflow at {tracking_uri} "
            f"(experiment {self.experiment!r})",
            f"{len(self.existing)} already there from an earlier export",
        ]
        if self.not_ended:
            parts.append(f"{self.not_ended} trial(s) not ended yet (export again later)")
        return "; ".join(parts)


def export_runs(
    tracking_uri: str,
    comparison: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    *,
    experiment: str | None = None,
) -> list[str]:
    """Log every ended trial as an MLflow run; returns the run ids (existing ones included)."""
    return log_runs(tracking_uri, comparison, trials, metrics, experiment=experiment).run_ids


def log_runs(
    tracking_uri: str,
    comparison: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    *,
    experiment: str | None = None,
) -> ExportResult:
    """Log every ended trial not logged yet as an MLflow run; what was new and what was not."""
    require_mlflow()
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=tracking_uri)
    name = experiment or f"archbench/{comparison['name']}"
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    curves: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in metrics:
        curves[str(row["trial_id"])].append(row)
    result = ExportResult(experiment=name)
    for trial in trials:
        if trial.get("status") not in TERMINAL:
            result.not_ended += 1
            continue
        existing = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`archbench.trial_id` = '{trial['id']}'",
            max_results=1,
        )
        if existing:
            result.existing.append(existing[0].info.run_id)
            continue
        tags = {
            "archbench.comparison_id": str(comparison["id"]),
            "archbench.comparison_name": str(comparison["name"])[:250],
            "archbench.trial_id": str(trial["id"]),
            "archbench.variant": str(trial["variant"]),
            "archbench.seed": str(trial["seed"]),
            "archbench.status": str(trial["status"]),
        }
        run = client.create_run(
            experiment_id,
            run_name=f"{trial['variant']}-seed{trial['seed']}",
            tags=tags,
            start_time=_ms(trial.get("started_at")),
        )
        run_id = run.info.run_id
        values: list[Any] = []
        stamp = _ms(trial.get("finished_at"))
        for row in sorted(curves.get(str(trial["id"]), []), key=lambda r: int(r["epoch"])):
            for key, value in row.items():
                if key in ROW_KEYS or not isinstance(value, int | float) or value is None:
                    continue
                metric = "epoch_seconds" if key == "seconds" else key
                values.append(Metric(metric, float(value), stamp, int(row["epoch"])))
        for key in FINAL_METRICS:
            if isinstance(trial.get(key), int | float):
                values.append(
                    Metric(key, float(trial[key]), stamp, int(trial.get("epochs_done") or 0))
                )
        params = [Param(k, v) for k, v in _params(comparison, trial).items()]
        client.log_batch(run_id, params=params, tags=[RunTag("archbench.exported", "1")])
        for start in range(0, len(values), 1000):
            client.log_batch(run_id, metrics=values[start : start + 1000])
        client.set_terminated(run_id, status=RUN_STATUS[str(trial["status"])], end_time=stamp)
        result.new.append(run_id)
    return result
