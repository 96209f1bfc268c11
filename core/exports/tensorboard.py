"""Write a comparison's learning curves as TensorBoard event files, without TensorFlow.

``archbench export ID --tensorboard DIR``: one folder per comparison, ``DIR/<name>-<id8>``
(``bundle.folder_name``), so two comparisons with the same variant names never share a run;
in it one run per trial, ``<variant>/seed<seed>``, so TensorBoard groups the seeds of a
variant, and a ``report`` run whose text tab holds the verdict, the design and the report's
Markdown (rewritten by each export: an interim verdict is replaced by the final one). The
folder's ``archbench.json`` names the comparison it holds; a folder holding another
comparison's runs is refused, never merged into. Each epoch metric (``loss``, ``accuracy``,
``val_loss``, ...) is a scalar series with step = epoch, ``epoch_seconds`` the epoch's
duration, and the trial's final test metrics are logged at its last epoch. Written with
TensorBoard's own framework-free writer (``tensorboard.summary.Writer``), so the api and the
command line never import TensorFlow. A run folder that already holds event files is left
as it is: exporting again adds nothing twice.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.exports.bundle import (
    ComparisonBundle,
    design_params,
    folder_name,
    safe_name,
    seed_label,
)
from core.status import TERMINAL

__all__ = ["TensorBoardResult", "comparison_dir", "run_dir", "write_event_files"]

ROW_KEYS = {"trial_id", "variant", "seed", "stage", "replicate", "epoch"}
FINAL_METRICS = ("test_accuracy", "test_loss", "best_val_accuracy")
MARKER = "archbench.json"
REPORT_RUN = "report"


@dataclass
class TensorBoardResult:
    """Runs written now, runs already there, and trials with no epoch yet."""

    folder: Path
    new: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    empty: int = 0
    verdict: str | None = None

    def summary(self, log_dir: Path) -> str:
        """One line for a person: where, what was new, what was there, how to look."""
        line = (
            f"wrote {len(self.new)} new TensorBoard run(s) to {self.folder}; "
            f"{len(self.existing)} already there"
        )
        if self.empty:
            line += f"; {self.empty} trial(s) without a finished epoch yet"
        if self.verdict:
            line += "; the verdict is in its report run"
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


def comparison_dir(log_dir: Path, comparison: Mapping[str, Any]) -> Path:
    """The comparison's folder under ``log_dir``, claimed for it by its ``archbench.json``;
    ValueError when another comparison's runs are there."""
    where = log_dir / folder_name(comparison)
    marker = where / MARKER
    if marker.is_file():
        try:
            held = json.loads(marker.read_text()).get("id")
        except (ValueError, AttributeError):
            held = None
        if held != str(comparison["id"]):
            raise ValueError(
                f"{where} holds the runs of comparison {held or 'unknown'}, not of "
                f"{comparison['id']}: choose another folder (two comparisons are never merged)"
            )
        return where
    if where.is_dir() and any(where.iterdir()):
        raise ValueError(f"{where} is not empty and not an archbench export: choose another folder")
    where.mkdir(parents=True, exist_ok=True)
    body = {"id": str(comparison["id"]), "name": str(comparison["name"])}
    marker.write_text(json.dumps(body, indent=2) + "\n")
    return where


def run_dir(folder: Path, trial: Mapping[str, Any]) -> Path:
    """The folder of a trial's run in its comparison's folder: ``<variant>/seed<seed>`` (a
    replicate's: ``<variant>/seed<seed>-replicate<k>``)."""
    return folder / safe_name(str(trial["variant"])) / seed_label(trial)


def _text_event(writer: Any, tag: str, text: str) -> None:
    """A text summary (TensorBoard's text tab, Markdown rendered), TensorFlow-free."""
    import numpy as np
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.text import metadata
    from tensorboard.util import tensor_util

    tensor = tensor_util.make_tensor_proto(np.array(text, dtype=np.object_))
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor,
        metadata=metadata.create_summary_metadata(display_name=None, description=None),
    )
    event = event_pb2.Event(step=0, summary=summary_pb2.Summary(value=[value]))
    writer.add_event(event)


def _write_report_run(folder: Path, bundle: ComparisonBundle) -> None:
    """The ``report`` run: the verdict, the design and the report, replaced on each export."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    where = folder / REPORT_RUN
    if where.is_dir():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    writer = EventFileWriter(str(where))
    comparison = bundle.comparison
    _text_event(writer, "comparison", f"{comparison['name']} (id {comparison['id']})")
    if bundle.verdict:
        final = "final" if bundle.final else "interim"
        _text_event(writer, "verdict", f"{bundle.verdict} ({final})")
    design = design_params(comparison, bundle.report)
    _text_event(writer, "design", "\n".join(f"- {k}: {v}" for k, v in design.items()))
    markdown = bundle.files.get("report.md")
    if markdown:
        _text_event(writer, "report", markdown.decode("utf-8", "replace"))
    writer.close()


def _epoch_time(trial: Mapping[str, Any]) -> float | None:
    started = trial.get("started_at")
    if isinstance(started, str):
        try:
            return datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def write_event_files(log_dir: Path, bundle: ComparisonBundle) -> TensorBoardResult:
    """Write the comparison's report run and one run per trial that has epochs, in the
    comparison's own folder; see the module docstring."""
    _without_tensorflow()
    folder = comparison_dir(log_dir, bundle.comparison)
    curves: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in bundle.metrics:
        curves[str(row["trial_id"])].append(row)
    result = TensorBoardResult(folder=folder, verdict=bundle.verdict)
    _write_report_run(folder, bundle)
    for trial in bundle.trials:
        rows = sorted(curves.get(str(trial["id"]), []), key=lambda r: int(r["epoch"]))
        if not rows:
            result.empty += 1
            continue
        where = run_dir(folder, trial)
        name = str(where.relative_to(log_dir))
        if where.is_dir() and any(where.glob("events.out.tfevents.*")):
            result.existing.append(name)
            continue
        _write_trial_run(where, trial, rows)
        result.new.append(name)
    return result


def _write_trial_run(
    where: Path, trial: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> None:
    """One trial's epochs as scalars (step = epoch), and its final test metrics."""
    from tensorboard.summary import Writer

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
