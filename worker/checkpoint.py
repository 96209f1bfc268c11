"""A trial's resume point on disk, committed atomically (no Keras import at module level).

Resume: after every finished epoch ``Checkpoint`` saves the weights (optimizer state
included) into the trial's checkpoint folder and then ``state.json``, which names them, holds
the epoch count and that epoch's row, and is the commit point: each file is written under a
temporary name unique to this attempt, flushed to disk and renamed into place, so a worker
killed at any instant, in the middle of a write included, leaves the previous resume point
whole (``keras.callbacks.BackupAndRestore`` writes its two files in place, and a kill during
its save left a torn file that failed the next attempt). The rename happens inside the
caller's ``lease_guard``, which holds the trial's lease while it runs, so a worker that lost
the trial cannot move the new owner's resume point. Then the epoch's row is reported; a
worker that dies between the two leaves a checkpoint one epoch ahead of the rows, and the
next attempt stores that row from ``state.json`` (``on_resume``) before training on, so the
rows never run past the checkpoint and none is lost. When training ends by itself (all
epochs, early stopping, the time budget), ``state.json`` is committed once more as final,
with the weights to evaluate (EarlyStopping's restored best ones) and the stop reason: an
attempt that finds it, or a checkpoint at the last planned epoch, goes straight to the
evaluation, keeping every row. The caller removes the folder once the trial's result is
committed. When a stop cuts an epoch short, Keras 3.15 still runs validation and calls
``on_epoch_end`` for the partial epoch; here the partial epoch is neither saved nor reported.
A resumed run continues with the saved weights and optimizer state, but the RNG streams
(shuffling, dropout) restart from the trial seed, and EarlyStopping's patience counter starts
afresh, so a resumed trial is equivalent, not bit-identical, to an uninterrupted one.

Where the folder lives (``checkpoint_folder``) and its removal (``remove_checkpoint``) are
rules the sweeper needs too, so they live in ``core.store.checkpoints``; the worker takes
them from here.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.store.checkpoints import checkpoint_folder, remove_checkpoint

__all__ = ["Checkpoint", "Resume", "checkpoint_folder", "remove_checkpoint"]

log = logging.getLogger("archbench.worker")


@dataclass
class Resume:
    """What a checkpoint holds: finished epochs, that epoch's row, and whether it is final."""

    epoch: int = 0
    row: dict[str, float] | None = None
    final: bool = False
    stop_reason: str | None = None


class Checkpoint:
    """A trial's resume point in ``folder``: one finished epoch's weights and ``state.json``.

    ``state.json`` (``{"epoch": n, "weights": "epoch-n-<token>.weights.h5", "row": {...}}``,
    plus ``"final": true`` and ``"stop_reason"`` once training ended by itself, when new
    weights are ``epoch-n-<token>-final.weights.h5``) is replaced
    only after the weights it names are complete on disk, so what it points at is always
    whole; a file being written when the process died is a temporary one that nothing points
    at. Every file name this attempt writes carries its own token, so two attempts that
    overlap (one lost its lease and does not know yet) never write the same file, and the
    rename of ``state.json`` runs under ``guard`` (the caller's lease check).
    """

    STATE = "state.json"

    def __init__(self, folder: Path, guard: Callable[[Callable[[], None]], None] | None = None):
        self.folder = folder
        self.guard = guard
        self.token = uuid.uuid4().hex[:12]
        self.weights: str | None = None  # the committed weights file (saved or restored)
        self.epoch: int | None = None  # the epoch they hold

    @staticmethod
    def _commit(tmp: Path, final: Path) -> None:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)

    def _save_weights(self, model: Any, epoch: int, suffix: str = "") -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch}-{self.token}{suffix}.weights.h5"
        tmp = self.folder / f"tmp-{name}"  # Keras wants the .weights.h5 suffix
        model.save_weights(str(tmp), overwrite=True)
        self._commit(tmp, self.folder / name)
        return name

    def _commit_state(self, state: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{self.STATE}.{self.token}.tmp"
        tmp.write_text(json.dumps(state))

        def rename() -> None:
            if tmp.exists():  # not yet renamed by an earlier try of this same commit
                self._commit(tmp, self.folder / self.STATE)
            dir_fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the renames themselves survive a machine crash
            finally:
                os.close(dir_fd)

        if self.guard is not None:
            self.guard(rename)
        else:
            rename()
        self.weights, self.epoch = state["weights"], state["epoch"]
        # Only committed weights files (never another attempt's temporary ones), and only
        # after our own commit under the lease: the older resume points.
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old.name != self.weights:
                old.unlink(missing_ok=True)

    def save(self, model: Any, epochs_done: int, row: Mapping[str, float] | None = None) -> None:
        """Make ``epochs_done`` finished epochs (and that epoch's ``row``) the resume point."""
        weights = self._save_weights(model, epochs_done)
        self._commit_state(
            {"epoch": epochs_done, "weights": weights, "row": dict(row) if row else None}
        )

    def finish(self, model: Any, epochs_done: int, stop_reason: str | None, fresh: bool) -> None:
        """Mark training over: the weights to evaluate (new ones when ``fresh``, or those of
        the last resume point) and why it ended, so a retry goes straight to evaluation.

        New weights get a name of their own (``-final``): the committed resume point of the
        same epoch is this attempt's ``epoch-<n>-<token>``, and writing over it would change
        what the current ``state.json`` points at before the final one is committed.
        """
        weights = self.weights
        if fresh or weights is None or self.epoch != epochs_done:
            weights = self._save_weights(model, epochs_done, "-final")
        self._commit_state(
            {
                "epoch": epochs_done,
                "weights": weights,
                "row": None,
                "final": True,
                "stop_reason": stop_reason,
            }
        )

    def restore(self, model: Any) -> Resume | None:
        """Load the resume point into ``model``; what it holds (epoch 0 when there is none).

        None when one exists but cannot be loaded (a damaged disk, a changed model): the
        model may then hold part of it, and the caller starts again from a fresh one.
        """
        path = self.folder / self.STATE
        if not path.exists():
            return Resume()
        try:
            state = json.loads(path.read_text())
            epoch, name = int(state["epoch"]), Path(state["weights"]).name
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(self.folder / name))
        except Exception as exc:
            log.warning(
                "checkpoint in %s is unusable (%s); training from scratch", self.folder, exc
            )
            return None
        self.weights, self.epoch = name, epoch
        row = state.get("row")
        return Resume(
            epoch=epoch,
            row={k: float(v) for k, v in row.items()} if isinstance(row, dict) else None,
            final=bool(state.get("final")),
            stop_reason=state.get("stop_reason"),
        )
