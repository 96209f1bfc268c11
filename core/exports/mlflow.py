"""Log a comparison to MLflow: a parent run for the comparison, a child run per trial.

Used by ``archbench export ID --mlflow URI`` (from the api's JSON, with the report) and by
workers with ``ARCHBENCH_MLFLOW_TRACKING_URI`` set (from the database, as each trial ends).

The parent run (tag ``archbench.role = comparison``, found again by its comparison id) holds
the design as params (split, seeds, margin, tuning: ``bundle.design_params``) and, once an
export brings the report, the verdict (tag ``archbench.verdict`` and the run's description)
and the report's files as artifacts (``report.json``, ``report.md``, ``report.png``,
``similarity.png``). Each trial is a child run (``mlflow.parentRunId``) with per-epoch
metrics, tagged ``archbench.trial_id``: a trial already logged is not logged twice, and a
trial reused from an earlier comparison (``reused_from``) is not logged again when its
source's run is in the store (the parent lists it in ``reused_runs.json``). MLflow's own
"View run" lines are not printed (``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``); the export
names the parent run once. mlflow is optional (the ``mlflow`` extra), imported only here.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.exports.bundle import (
    REPORT_FILES,
    ComparisonBundle,
    design_params,
    folder_name,
    seed_label,
)
from core.spec import TRAINING_KNOBS
from core.status import TERMINAL, ComparisonStatus, TrialStatus

__all__ = [
    "ExportResult",
    "architecture_summary",
    "export_runs",
    "log_bundle",
    "log_runs",
    "require_mlflow",
]

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
ROW_KEYS = {"trial_id", "variant", "seed", "stage", "replicate", "epoch"}
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


PARENT_STATUS: dict[str, str] = {
    ComparisonStatus.SUCCEEDED: "FINISHED",
    ComparisonStatus.FAILED: "FAILED",
    ComparisonStatus.CANCELLED: "KILLED",
}
QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


@dataclass
class ExportResult:
    """What an export did: the comparison's parent run; runs it logged now, runs an earlier
    export had logged (by trial, found by the ``archbench.trial_id`` tag), runs of earlier
    comparisons whose trials this one reuses (not logged twice), trials not ended yet."""

    experiment: str
    parent: str = ""
    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    not_ended: int = 0
    verdict: str | None = None
    by_trial: dict[str, str] = field(default_factory=dict)
    view: str | None = None

    @property
    def run_ids(self) -> list[str]:
        """Each ended trial's run id, in the order of the trials given."""
        return list(self.by_trial.values())

    def summary(self, tracking_uri: str) -> str:
        """One line for a person: what was new, what was already there, what is to come."""
        parts = [
            f"logged {len(self.new)} new run(s) to MLflow at {tracking_uri} "
            f"(experiment {self.experiment!r}, parent run {self.parent})",
            f"{len(self.existing)} already there from an earlier export",
        ]
        if self.reused:
            parts.append(f"{len(self.reused)} reused from an earlier comparison's runs")
        if self.not_ended:
            parts.append(f"{self.not_ended} trial(s) not ended yet (export again later)")
        if self.verdict:
            parts.append("the verdict and the report are on the parent run")
        return "; ".join(parts)

    def view_url(self, tracking_uri: str, experiment_id: str) -> str | None:
        """The parent run in MLflow's UI, for a tracking server; None for a local store."""
        if not tracking_uri.startswith(("http://", "https://")):
            return None
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{self.parent}"


@contextmanager
def _quiet() -> Iterator[None]:
    """No "View run ... at" line from MLflow for each run ended on a tracking server."""
    before = os.environ.get(QUIET)
    os.environ[QUIET] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(QUIET, None)
        else:
            os.environ[QUIET] = before


def _experiment(client: Any, tracking_uri: str, name: str) -> str:
    """The experiment's id, created when missing; a local SQLite store keeps its artifacts
    beside the database file (not in ``./mlruns`` wherever the command ran)."""
    found = client.get_experiment_by_name(name)
    if found:
        return str(found.experiment_id)
    location = None
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        location = (db.resolve().parent / "mlartifacts").as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _find_run(client: Any, experiment_ids: list[str], tags: Mapping[str, str]) -> str | None:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    found = client.search_runs(experiment_ids, filter_string=query, max_results=1)
    return str(found[0].info.run_id) if found else None


def _parent_run(client: Any, experiment_id: str, bundle: ComparisonBundle) -> str:
    """The comparison's parent run, created on first use; design params not yet logged."""
    from mlflow.entities import Param

    comparison = bundle.comparison
    cid = str(comparison["id"])
    tags = {"archbench.comparison_id": cid, "archbench.role": "comparison"}
    run_id = _find_run(client, [experiment_id], tags)
    if run_id is None:
        run = client.create_run(
            experiment_id,
            run_name=folder_name(comparison),
            tags={**tags, "archbench.comparison_name": str(comparison["name"])[:250]},
            start_time=_ms(comparison.get("created_at")),
        )
        run_id = str(run.info.run_id)
    logged = client.get_run(run_id).data.params
    design = design_params(comparison, bundle.report)
    params = [Param(k, v) for k, v in design.items() if k not in logged]
    if params:
        client.log_batch(run_id, params=params)
    return run_id


def _finish_parent(
    client: Any, parent: str, bundle: ComparisonBundle, reused: Mapping[str, str]
) -> None:
    """The verdict (tag and description) and the report's files on the parent run; ended
    when the comparison has."""
    from mlflow.entities import RunTag

    report_md = bundle.files.get("report.md", b"").decode("utf-8", "replace")
    verdict = bundle.verdict or ""
    tags = [
        RunTag("archbench.verdict", verdict[:5000]),
        RunTag("archbench.final", "1" if bundle.final else "0"),
        RunTag("archbench.reused_trials", str(len(reused))),
        RunTag("mlflow.note.content", (report_md or verdict)[:5000]),
    ]
    client.log_batch(parent, tags=tags)
    with tempfile.TemporaryDirectory() as tmp:
        for name in REPORT_FILES:
            if name in bundle.files:
                (Path(tmp) / name).write_bytes(bundle.files[name])
                client.log_artifact(parent, str(Path(tmp) / name))
        if reused:
            (Path(tmp) / "reused_runs.json").write_text(json.dumps(reused, indent=2) + "\n")
            client.log_artifact(parent, str(Path(tmp) / "reused_runs.json"))
    status = PARENT_STATUS.get(str(bundle.comparison.get("status")))
    if status and bundle.final:
        end = _ms(bundle.comparison.get("finished_at"))
        client.set_terminated(parent, status=status, end_time=end)


def _log_trial(
    client: Any,
    experiment_id: str,
    parent: str,
    comparison: Mapping[str, Any],
    trial: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
) -> str:
    """One ended trial as a child run of the comparison's; its run id."""
    from mlflow.entities import Metric, Param, RunTag

    tags = {
        "archbench.comparison_id": str(comparison["id"]),
        "archbench.comparison_name": str(comparison["name"])[:250],
        "archbench.trial_id": str(trial["id"]),
        "archbench.variant": str(trial["variant"]),
        "archbench.seed": str(trial["seed"]),
        "archbench.replicate": str(trial.get("replicate") or 0),
        "archbench.status": str(trial["status"]),
        "mlflow.parentRunId": parent,
    }
    if trial.get("reused_from"):
        tags["archbench.reused_from"] = str(trial["reused_from"])
    run = client.create_run(
        experiment_id,
        run_name=f"{trial['variant']}-{seed_label(trial)}",
        tags=tags,
        start_time=_ms(trial.get("started_at")),
    )
    run_id = str(run.info.run_id)
    values: list[Any] = []
    stamp = _ms(trial.get("finished_at"))
    for row in sorted(rows, key=lambda r: int(r["epoch"])):
        for key, value in row.items():
            if key in ROW_KEYS or not isinstance(value, int | float) or value is None:
                continue
            metric = "epoch_seconds" if key == "seconds" else key
            values.append(Metric(metric, float(value), stamp, int(row["epoch"])))
    for key in FINAL_METRICS:
        if isinstance(trial.get(key), int | float):
            values.append(Metric(key, float(trial[key]), stamp, int(trial.get("epochs_done") or 0)))
    params = [Param(k, v) for k, v in _params(comparison, trial).items()]
    client.log_batch(run_id, params=params, tags=[RunTag("archbench.exported", "1")])
    for start in range(0, len(values), 1000):
        client.log_batch(run_id, metrics=values[start : start + 1000])
    client.set_terminated(run_id, status=RUN_STATUS[str(trial["status"])], end_time=stamp)
    return run_id


class _ReusedRuns:
    """The runs of the trials reused trials come from, in any experiment of the store."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.experiments: list[str] | None = None

    def run_of(self, trial: Mapping[str, Any]) -> str | None:
        """The source trial's run, when ``trial`` is reused and its source was logged."""
        source = trial.get("reused_from")
        if not source:
            return None
        if self.experiments is None:
            found = self.client.search_experiments(max_results=1000)
            self.experiments = [str(e.experiment_id) for e in found]
        return _find_run(self.client, self.experiments, {"archbench.trial_id": str(source)})


def log_bundle(
    tracking_uri: str, bundle: ComparisonBundle, *, experiment: str | None = None
) -> ExportResult:
    """Log the comparison's parent run and every ended trial not logged yet as its child
    (see the module docstring); what was new, what was there, what was reused."""
    require_mlflow()
    from mlflow import MlflowClient

    comparison = bundle.comparison
    name = experiment or f"archbench/{comparison['name']}"
    result = ExportResult(experiment=name, verdict=bundle.verdict)
    with _quiet():
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment_id = _experiment(client, tracking_uri, name)
        result.parent = _parent_run(client, experiment_id, bundle)
        curves: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for row in bundle.metrics:
            curves[str(row["trial_id"])].append(row)
        reused: dict[str, str] = {}
        sources = _ReusedRuns(client)
        for trial in bundle.trials:
            tid = str(trial["id"])
            if trial.get("status") not in TERMINAL:
                result.not_ended += 1
                continue
            found = _find_run(client, [experiment_id], {"archbench.trial_id": tid})
            if found:
                result.existing.append(found)
            elif found := sources.run_of(trial):
                result.reused.append(found)
                reused[tid] = found
            else:
                found = _log_trial(
                    client, experiment_id, result.parent, comparison, trial, curves[tid]
                )
                result.new.append(found)
            result.by_trial[tid] = found
        if bundle.report is not None:
            _finish_parent(client, result.parent, bundle, reused)
    result.view = result.view_url(tracking_uri, experiment_id)
    return result


def log_runs(
    tracking_uri: str,
    comparison: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    *,
    experiment: str | None = None,
) -> ExportResult:
    """``log_bundle`` without a report: the parent run with the design, the trials."""
    return log_bundle(
        tracking_uri, ComparisonBundle(comparison, trials, metrics), experiment=experiment
    )


def export_runs(
    tracking_uri: str,
    comparison: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
    *,
    experiment: str | None = None,
) -> list[str]:
    """Log every ended trial; each one's run id, in the order given (reused ones: the run
    of the trial they reuse)."""
    return log_runs(tracking_uri, comparison, trials, metrics, experiment=experiment).run_ids
