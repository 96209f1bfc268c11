"""Write a comparison's learning curves as TensorBoard event files, without TensorFlow.

``archbench export ID --tensorboard DIR``: one run per trial, ``DIR/<variant>/seed<seed>``,
so TensorBoard groups the seeds of a variant; each epoch metric (``loss``, ``accuracy``,
``val_loss``, ...) is a scalar series with step = epoch, ``epoch_seconds`` the epoch's
duration, and the trial's final test metrics are logged at its last epoch. Written with
TensorBoard's own framework-free writer (``tensorboard.summary.Writer``), so the api and the
command line never import TensorFlow. A run folder that already holds event files is left
as it is: exporting again adds nothing twice.
"""

from __future__ import annotations

import re
import sys
import types
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.status import TERMINAL

__all__ = ["TensorBoardResult", "run_dir", "write_event_files"]

ROW_KEYS = {"trial_id", "variant", "seed", "epoch"}
FINAL_METRICS = ("test_accuracy", "test_loss", "best_val_accuracy")


@dataclass
class TensorBoardResult:
    """Runs written now, runs already there, and trials with no epoch yet."""

    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    empty: int = 0

    def summary(self, log_dir: Path) -> str:
        line = (
            f"wrote {len(self.new)} new TensorBoard run(s) to {log_dir}; "
            f"{len(self.existing)} already there"
        )
        if self.empty:
            line += f"; {self.empty} trial(s) without a finished epoch yet"
        return line + f" (view: tensorboard --logdir {log_dir})"


def _without_tensorflow() -> None:
    """TensorBoard's file I/O goes through ``tensorboard.compat.tf``, which imports
    TensorFlow when it is installed (seconds, and gigabytes of it in the api's process).
    Registering ``tensorboard.compat.notf``, TensorBoard's documented switch, makes it use
    its own stub instead; a process that already has TensorFlow keeps it."""
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault(
            "tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf")
        )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._") or "_"


def run_dir(log_dir: Path, trial: Mapping[str, Any]) -> Path:
    """The folder of a trial's run: ``<variant>/seed<seed>``."""
    return log_dir / _safe(str(trial["variant"])) / f"seed{int(trial['seed'])}"


def _epoch_time(trial: Mapping[str, Any]) -> float | None:
    started = trial.get("started_at")
    if isinstance(started, str):
        try:
            return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def write_event_files(
    log_dir: Path,
    trials: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
) -> TensorBoardResult:
    """Write one run per trial that has epochs; see the module docstring."""
    _without_tensorflow()
    from tensorboard.summary import Writer

    curves: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in metrics:
        curves[str(row["trial_id"])].append(row)
    result = TensorBoardResult()
    for trial in trials:
        rows = sorted(curves.get(str(trial["id"]), []), key=lambda r: int(r["epoch"]))
        if not rows:
            result.empty += 1
            continue
        where = run_dir(log_dir, trial)
        name = str(where.relative_to(log_dir))
        if where.is_dir() and any(where.glob("events.out.tfevents.*")):
            result.existing.append(name)
            continue
        where.mkdir(parents=True, exist_ok=True)
        writer = Writer(str(where))
        clock = _epoch_time(trial)
        last = 0
        for row in rows:
            epoch = int(row["epoch"])
            last = max(last, epoch)
            seconds = row.get("seconds")
            if clock is not None and isinstance(seconds, int | float):
                clock += float(seconds)
            for key, value in row.items():
                if key in ROW_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                tag = "epoch_seconds" if key == "seconds" else key
                writer.add_scalar(tag, float(value), epoch, wall_time=clock)
        if trial.get("status") in TERMINAL:
            for key in FINAL_METRICS:
                value = trial.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    writer.add_scalar(key, float(value), last, wall_time=clock)
        writer.close()
        result.new.append(name)
    return result
