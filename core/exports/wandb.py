"""Write a comparison as Weights & Biases offline runs, to sync later with ``wandb sync``.

``archbench export ID --wandb DIR`` writes W&B's own offline format (``DIR/wandb/
offline-run-<time>-<run id>/run-<run id>.wandb``, written by the ``wandb`` package in offline
mode: nothing leaves the machine until ``wandb sync DIR/wandb/offline-run-*``). W&B has no
nested runs, so the parent/child shape is a group: the comparison's group is
``<name>-<id8>`` (``bundle.folder_name``), in it one run of job type ``comparison`` (config:
the design; summary: the verdict and whether it is final; notes: the report's Markdown; an
artifact of type ``report`` with ``report.json``, ``report.md``, ``report.png`` and
``similarity.png``) and one run of job type ``trial`` per ended trial (config: variant, seed,
architecture, settings; history: each epoch's metrics, step = epoch; summary: the final test
metrics). Run ids come from the comparison's and the trials' ids, so two comparisons never
share a run and exporting again writes only what is missing; a trial reused from an earlier
comparison whose run is already in DIR is not written again (the comparison run's config
lists it under ``reused_runs``). The comparison run is rewritten by each export, so it holds
the latest verdict. wandb is optional (the ``wandb`` extra), imported only here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.exports.bundle import (
    REPORT_FILES,
    ComparisonBundle,
    design_params,
    folder_name,
    seed_label,
)
from core.exports.mlflow import FINAL_METRICS, ROW_KEYS, architecture_summary
from core.status import TERMINAL

__all__ = ["WandbResult", "comparison_run_id", "trial_run_id", "write_offline_runs"]

PROJECT = "archbench"


@dataclass
class WandbResult:
    """Runs written now, runs already in the folder, trials reused from earlier runs there,
    and trials not ended yet (not written)."""

    folder: Path
    group: str
    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    not_ended: int = 0

    def summary(self) -> str:
        """One line for a person: what was written, what was there, how to sync it."""
        parts = [
            f"wrote {len(self.new)} W&B offline run(s) to {self.folder} (group {self.group!r})",
            f"{len(self.existing)} already there",
        ]
        if self.reused:
            parts.append(f"{len(self.reused)} reused from an earlier comparison's runs")
        if self.not_ended:
            parts.append(f"{self.not_ended} trial(s) not ended yet (export again later)")
        return "; ".join(parts) + f" (sync: wandb sync {self.folder}/offline-run-*)"


def require_wandb() -> Any:
    """The wandb module, or an ImportError that says how to install it."""
    try:
        import wandb
    except ImportError:
        raise ImportError("W&B export needs wandb: pip install 'archbench[wandb]'") from None
    return wandb


def comparison_run_id(comparison: Mapping[str, Any]) -> str:
    """The comparison run's W&B id."""
    return "cmp-" + str(comparison["id"]).replace("-", "")


def trial_run_id(trial_id: str) -> str:
    """A trial run's W&B id."""
    return "trial-" + str(trial_id).replace("-", "")


def _written(folder: Path, run_id: str) -> bool:
    return any(folder.glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))


def _trial_config(comparison: Mapping[str, Any], trial: Mapping[str, Any]) -> dict[str, Any]:
    spec = comparison.get("spec") or {}
    variants = {v.get("name"): v for v in spec.get("variants", [])}
    out = {
        "variant": trial["variant"],
        "seed": trial["seed"],
        "replicate": trial.get("replicate") or 0,
        "trial_id": str(trial["id"]),
        "comparison_id": str(comparison["id"]),
        "status": trial.get("status"),
        "architecture": architecture_summary(variants.get(trial["variant"], {})),
        "params": trial.get("params"),
        "flops": trial.get("flops"),
        "dataset": (spec.get("dataset") or {}).get("name"),
        "training": spec.get("training"),
        "reused_from": trial.get("reused_from"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _init(wandb: Any, root: Path, run_id: str, group: str, **kwargs: Any) -> Any:
    settings = wandb.Settings(
        silent=True, console="off", disable_git=True, save_code=False, x_disable_stats=True
    )
    return wandb.init(
        mode="offline",
        dir=str(root),
        project=PROJECT,
        group=group,
        id=run_id,
        reinit="create_new",
        settings=settings,
        **kwargs,
    )


def _write_comparison(
    wandb: Any, root: Path, bundle: ComparisonBundle, reused: Mapping[str, str]
) -> None:
    comparison = bundle.comparison
    group = folder_name(comparison)
    config: dict[str, Any] = {
        "comparison_id": str(comparison["id"]),
        "name": comparison["name"],
        **design_params(comparison, bundle.report),
    }
    if reused:
        config["reused_runs"] = dict(reused)
    notes = bundle.files.get("report.md", b"").decode("utf-8", "replace") or None
    run = _init(
        wandb, root, comparison_run_id(comparison), group,
        job_type="comparison", name=group, config=config, notes=notes,
    )  # fmt: skip
    try:
        run.summary["verdict"] = bundle.verdict or ""
        run.summary["final"] = bundle.final
        files = [n for n in REPORT_FILES if n in bundle.files]
        if files:
            with tempfile.TemporaryDirectory() as tmp:
                artifact = wandb.Artifact(f"report-{group}", type="report")
                for name in files:
                    (Path(tmp) / name).write_bytes(bundle.files[name])
                    artifact.add_file(str(Path(tmp) / name), name=name)
                run.log_artifact(artifact)
    finally:
        run.finish()


def _write_trial(
    wandb: Any,
    root: Path,
    comparison: Mapping[str, Any],
    trial: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    run = _init(
        wandb, root, trial_run_id(str(trial["id"])), folder_name(comparison),
        job_type="trial", name=f"{trial['variant']}-{seed_label(trial)}",
        config=_trial_config(comparison, trial),
    )  # fmt: skip
    try:
        for row in sorted(rows, key=lambda r: int(r["epoch"])):
            values = {
                ("epoch_seconds" if k == "seconds" else k): float(v)
                for k, v in row.items()
                if k not in ROW_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
            }
            run.log({**values, "epoch": int(row["epoch"])}, step=int(row["epoch"]))
        for key in FINAL_METRICS:
            value = trial.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                run.summary[key] = float(value)
    finally:
        run.finish(exit_code=0 if trial.get("status") == "succeeded" else 1)


def write_offline_runs(log_dir: Path, bundle: ComparisonBundle) -> WandbResult:
    """Write the comparison's runs not yet in ``log_dir/wandb``; see the module docstring."""
    wandb = require_wandb()
    root = log_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / "wandb"
    comparison = bundle.comparison
    result = WandbResult(folder=folder, group=folder_name(comparison))
    curves: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in bundle.metrics:
        curves[str(row["trial_id"])].append(row)
    reused: dict[str, str] = {}
    for trial in bundle.trials:
        tid = str(trial["id"])
        run_id = trial_run_id(tid)
        source = trial.get("reused_from")
        if trial.get("status") not in TERMINAL:
            result.not_ended += 1
        elif _written(folder, run_id):
            result.existing.append(run_id)
        elif source and _written(folder, trial_run_id(str(source))):
            reused[tid] = trial_run_id(str(source))
            result.reused.append(reused[tid])
        else:
            _write_trial(wandb, root, comparison, trial, curves[tid])
            result.new.append(run_id)
    # The comparison run carries the latest verdict: rewritten on each export (a sync of the
    # same run id updates the synced one).
    parent = comparison_run_id(comparison)
    for old in folder.glob(f"offline-run-*-{parent}"):
        shutil.rmtree(old, ignore_errors=True)
    _write_comparison(wandb, root, bundle, reused)
    result.new.insert(0, parent)
    return result
