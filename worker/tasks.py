"""Celery tasks: a message carries a trial id; the task claims the row and trains it.

The flow of one delivery: claim the trial under a lease (a second delivery of a trial that is
running or done does nothing) ▸ load the dataset and the comparison's fixed split ▸ build and
fit, writing each epoch as it finishes, renewing the lease, watching for cancel ▸ evaluate ▸
write the final row ▸ finish the comparison when its last trial ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.lifecycle import (
    LeaseLost,
    claim_trial,
    finalize_comparison,
    finish_trial,
    renew_lease,
    rewind_trial,
    upsert_epoch,
)
from core.logging import log_context
from core.queue import TRAIN_TASK
from core.reuse import library_versions, trial_hash
from core.spec import DatasetRef, TrainingSpec
from core.tables import Comparison, EpochMetric, Trial
from core.uploads import upload_path_of
from worker.celery_app import app

__all__ = ["run_trial", "train_trial_task"]

log = logging.getLogger("archbench.worker")

CHECK_INTERVAL = 1.0  # seconds between cancel checks during training


class _Heartbeat:
    """Renews a trial's lease from a thread, every third of the lease, until stopped.

    A thread rather than the training callbacks: importing TensorFlow, loading a dataset, one
    slow batch or the final evaluation can each outlast a short lease. It gives up after
    ``limit`` seconds, so a child whose main thread hangs loses its trial to the sweeper.
    """

    def __init__(self, trial_id: str, owner: str, lease_seconds: int, limit: float) -> None:
        self.trial_id, self.owner, self.lease_seconds = trial_id, owner, lease_seconds
        self.deadline = time.monotonic() + limit
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archbench-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            if time.monotonic() > self.deadline:
                log.warning("trial %s: heartbeat past its time limit; stopping", self.trial_id)
                return
            try:
                with session_scope() as s:
                    renew_lease(
                        s, self.trial_id, owner=self.owner, lease_seconds=self.lease_seconds
                    )
            except LeaseLost:
                self.lost.set()
                return
            except Exception as exc:  # a database blip: the next beat tries again
                log.warning("trial %s: lease renewal failed: %s", self.trial_id, exc)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _problem(exc: BaseException) -> dict[str, Any]:
    """A trial failure as a problem object: the exception's type and message, no traceback."""
    return {
        "type": "https://archbench.dev/problems/trial-failed",
        "title": "Trial failed",
        "status": 500,
        "detail": f"{type(exc).__name__}: {exc}"[:2000],
    }


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_trial_task(trial_id: str) -> str:
    """Train one trial, identified by id (the row in the database is the truth)."""
    return run_trial(trial_id)


def run_trial(trial_id: str) -> str:
    """Claim and train one trial; returns what happened (for logs and tests)."""
    with log_context(trial_id=trial_id):
        return _run_trial(trial_id)


def _run_trial(trial_id: str) -> str:
    settings = get_settings()
    owner = f"{_worker_name()}:{uuid.uuid4().hex[:8]}"
    # One transaction decides what this delivery does: cancel, give up, claim, or nothing.
    with session_scope() as s:
        row = s.execute(
            select(Trial, Comparison)
            .join(Comparison, Comparison.id == Trial.comparison_id)
            .where(Trial.id == trial_id)
        ).first()
        if row is None:
            log.warning("trial %s does not exist; dropping the message", trial_id)
            return "missing"
        trial, comparison = row.tuple()
        comparison_id = comparison.id
        outcome = None
        if trial.status == "queued" and comparison.cancel_requested:
            # A queued trial of a cancelled comparison never starts.
            finish_trial(s, trial_id, owner=None, status="cancelled", stop_reason="cancelled")
            outcome = "cancelled"
        elif trial.status == "queued" and trial.attempts >= settings.max_attempts:
            finish_trial(
                s,
                trial_id,
                owner=None,
                status="failed",
                error={
                    **_problem(RuntimeError("attempt limit reached")),
                    "detail": f"gave up after {trial.attempts} attempts",
                },
            )
            outcome = "failed"
        elif not claim_trial(
            s,
            trial_id,
            owner=owner,
            worker=_worker_name(),
            lease_seconds=settings.lease_seconds,
        ):
            with log_context(comparison_id=comparison_id):
                log.info(
                    "trial %s is not claimable (status %s); duplicate delivery",
                    trial_id,
                    trial.status,
                )
            return "duplicate"
        spec = comparison.spec
        variant_index = trial.variant_index
        seed = int(trial.seed)
        attempt = trial.attempts + 1
    with log_context(comparison_id=comparison_id):
        if outcome is not None:
            with session_scope() as s:
                finalize_comparison(s, comparison_id)
            return outcome
        log.info(
            "trial %s claimed: %s seed %d (attempt %d)",
            trial_id,
            spec["variants"][variant_index]["name"],
            seed,
            attempt,
        )
        return _run_claimed(
            trial_id, comparison_id, spec, variant_index, seed, owner, resumed=attempt > 1
        )


def _run_claimed(
    trial_id: str,
    comparison_id: str,
    spec: dict[str, Any],
    variant_index: int,
    seed: int,
    owner: str,
    *,
    resumed: bool,
) -> str:
    """Train a trial this worker holds the lease of, and finish its comparison if last."""
    settings = get_settings()
    outcome = "failed"
    budget = float(spec["training"].get("max_seconds") or settings.trial_max_seconds)
    try:
        with _Heartbeat(trial_id, owner, settings.lease_seconds, budget + 3600) as heartbeat:
            outcome = _train(
                trial_id, comparison_id, spec, variant_index, seed, owner, heartbeat, resumed
            )
    except LeaseLost:
        log.warning("trial %s: lease lost; another worker owns it now", trial_id)
        return "lease_lost"
    except Exception as exc:
        log.exception("trial %s failed", trial_id)
        with session_scope() as s:
            finish_trial(s, trial_id, owner=owner, status="failed", error=_problem(exc))
    with session_scope() as s:
        finalize_comparison(s, comparison_id)
    return outcome


def _train(
    trial_id: str,
    comparison_id: str,
    spec: dict[str, Any],
    variant_index: int,
    seed: int,
    owner: str,
    heartbeat: _Heartbeat,
    resumed: bool,
) -> str:
    """Load data, train, evaluate and store the result; returns the trial's final status."""
    variant = spec["variants"][variant_index]
    from models.spec import parse_variant
    from worker.datasets import load_dataset, make_split
    from worker.training import train_trial

    settings = get_settings()
    dataset_ref = DatasetRef.model_validate(spec["dataset"])
    training = TrainingSpec.model_validate(spec["training"])
    parsed = parse_variant(
        {
            "name": variant["name"],
            "input_shape": variant["input_shape"],
            "layers": variant["layers"],
        }
    )
    assert parsed.layers is not None
    ds = load_dataset(
        dataset_ref.name,
        cache_dir=settings.dataset_cache,
        upload_dir=settings.data_dir / "uploads",
        upload_path=upload_path_of(comparison_id, dataset_ref.name),
    )
    split = make_split(
        ds,
        test_split=dataset_ref.test_split,
        validation_split=dataset_ref.validation_split,
        split_seed=dataset_ref.split_seed,
        max_samples=dataset_ref.max_samples,
    )
    checkpoint_dir = Path(settings.checkpoints) / trial_id
    last_check = time.monotonic()
    budget = float(training.max_seconds or settings.trial_max_seconds)

    def on_resume(epochs: int) -> float:
        # The time budget covers the whole trial: an attempt gets what is left of it. A first
        # attempt has nothing stored and skips the round trip.
        if not resumed and epochs == 0:
            return 0.0
        with session_scope() as s:
            return rewind_trial(
                s, trial_id, owner=owner, epoch=epochs, lease_seconds=settings.lease_seconds
            )

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        values = {k: float(v) for k, v in logs.items() if k not in ("seconds", "epoch")}
        with session_scope() as s:
            upsert_epoch(
                s,
                trial_id,
                owner=owner,
                epoch=epoch,
                values=values,
                seconds=logs.get("seconds"),
                lease_seconds=settings.lease_seconds,
            )

    def should_stop() -> str | None:
        nonlocal last_check
        if heartbeat.lost.is_set():
            raise LeaseLost(trial_id)
        now = time.monotonic()
        if now - last_check < CHECK_INTERVAL:
            return None
        last_check = now
        with session_scope() as s:
            cancelled = s.scalar(
                select(Comparison.cancel_requested).where(Comparison.id == comparison_id)
            )
        return "cancelled" if cancelled else None

    result = train_trial(
        layers=parsed.layers,
        input_shape=tuple(variant["input_shape"]),
        split=split,
        training=training,
        seed=seed,
        on_epoch=on_epoch,
        should_stop=should_stop,
        checkpoint_dir=checkpoint_dir,
        max_seconds=budget,
        on_resume=on_resume,
        model_name=variant["name"],
        # Inference speed does not depend on the seed: one trial per variant measures it
        # (tracing a predict function costs ~20 ms, as much as all other bookkeeping).
        measure_inference=seed == spec["seeds"][0],
        warm_models=settings.warm_models,
    )
    if result.epochs:
        log.info(
            "trial %s: this attempt trained epochs %d-%d%s%s",
            trial_id,
            result.first_epoch,
            int(result.epochs[-1]["epoch"]),
            " (resumed from its checkpoint)" if result.first_epoch > 1 else "",
            " on a warm model" if result.warm_model else "",
        )
    status = "cancelled" if result.stop_reason == "cancelled" else "succeeded"
    with session_scope() as s:
        # Over every stored epoch, including those trained before a resume.
        stored = s.scalars(select(EpochMetric.values).where(EpochMetric.trial_id == trial_id))
        candidates = [float(v["val_accuracy"]) for v in stored if v.get("val_accuracy") is not None]
        if result.best_val_accuracy is not None:
            candidates.append(result.best_val_accuracy)
        if not finish_trial(
            s,
            trial_id,
            owner=owner,
            status=status,
            params=result.params,
            trainable_params=result.trainable_params,
            train_seconds=result.train_seconds,
            test_accuracy=result.test_accuracy,
            test_loss=result.test_loss,
            test_metrics=result.test_metrics,
            best_val_accuracy=max(candidates) if candidates else None,
            inference_ms_per_sample=result.inference_ms_per_sample,
            stop_reason=result.stop_reason,
            device=result.device,
            # What really produced this result: the versions this worker trained with.
            trial_hash=trial_hash(spec, variant_index, seed, library_versions()),
        ):
            raise LeaseLost(trial_id)
    # Finished either way: a cancelled trial is never resumed, so its checkpoint goes too.
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    log.info("trial %s %s: test_accuracy=%s", trial_id, status, result.test_accuracy)
    return status
