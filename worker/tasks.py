"""Celery tasks: a message carries a trial id; the task claims the row and trains it.

The flow of one delivery: claim the trial under a lease (a second delivery of a trial that is
running or done does nothing) ▸ load the dataset and the trial's split (its seed's own, or
the comparison's fixed one) ▸ build and
fit, writing each epoch as it finishes, renewing the lease, watching for cancel ▸ evaluate ▸
write the final row ▸ finish the comparison when its last trial ends (or, for adaptive seeds,
add the next round and enqueue it).

Every way a trial ends here (result, failure, cancel, the attempt limit) removes its checkpoint
folder; a lost lease leaves it to the new owner. A database that cannot be reached is not the
trial's fault: the cancel check skips a beat, writes are retried for a few seconds, and then the
trial is handed back (or its lease left to expire) for the sweeper to enqueue again, to resume
from its checkpoint, instead of being marked failed. The claim is retried the same way, and
then the message is rejected back onto the queue rather than acked: a trial still queued has
nothing but its message to bring it back (the sweeper re-sends one whose message is lost).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.exceptions import Reject
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.errors import Problem, TrialFailed
from core.logging import log_context
from core.report.stored import refresh
from core.seeding import init_seed
from core.spec import StoredSpec
from core.status import Outcome, StopReason, TrialStage, TrialStatus
from core.store.db import session_scope
from core.store.tables import TRAINED_COLUMNS, Comparison, EpochMetric, Trial
from core.trials.dispatch import top_up
from core.trials.finalize import finalize_comparison
from core.trials.lifecycle import (
    LeaseLost,
    attempts_exhausted,
    claim_trial,
    end_unclaimed,
    finish_trial,
    release_trial,
    renew_lease,
    rewind_trial,
    upsert_epoch,
)
from core.trials.queue import TRAIN_TASK
from core.trials.reuse import library_versions, trial_hash
from core.trials.tuned import trial_setup
from worker.celery_app import app
from worker.checkpoint import checkpoint_folder, remove_checkpoint
from worker.db_retries import transient, with_db_retries
from worker.heartbeat import host_identity
from worker.lease import LeaseRenewal
from worker.memory import PeakSampler
from worker.trial_data import load_split
from worker.tuning import prune_now, stage_of

if TYPE_CHECKING:
    import numpy as np

    from worker.datasets import Split
    from worker.training import TrainResult
    from worker.trial_config import Analyse, TrialConfig

__all__ = ["TrialRun", "run_trial", "train_trial_task"]

log = logging.getLogger("archbench.worker")


def _worker_name() -> str:
    return f"{host_identity()}:{os.getpid()}"  # as the heartbeat names this host (see there)


def _problem(exc: BaseException) -> Problem:
    """A trial failure as a problem object: the exception's type and message, no traceback."""
    return TrialFailed(f"{type(exc).__name__}: {exc}"[:2000]).to_problem()


# acks_late and reject_on_worker_lost come from core.trials.queue.celery_config, with their reasons.
# A child killed for memory is told apart from other losses in the parent (worker.memory).
@app.task(name=TRAIN_TASK, ignore_result=True, Request="worker.memory:TrainRequest")
def train_trial_task(trial_id: str) -> str:
    """Train one trial, identified by id (the row in the database is the truth)."""
    return run_trial(trial_id)


def run_trial(trial_id: str) -> str:
    """Claim and train one trial; returns what happened (for logs and tests)."""
    with log_context(trial_id=trial_id):
        return _run_trial(trial_id)


@dataclass
class _Decided:
    """What the claim transaction decided for a delivery it did not drop."""

    comparison_id: str
    spec: StoredSpec
    variant_index: int
    seed: int
    attempt: int
    outcome: Outcome | None  # None: claimed, ours to train; else how the trial ended unclaimed
    replicate: int = 0


def _decide(trial_id: str, owner: str, retry: bool) -> _Decided | Outcome:
    """One transaction decides what this delivery does: cancel, give up, claim, or nothing
    ("missing", "duplicate"). ``retry``: an earlier try may have committed its claim before
    the connection dropped, and a trial running under our own owner is then ours."""
    settings = get_settings()
    with session_scope() as s:
        row = s.execute(
            select(Trial, Comparison)
            .join(Comparison, Comparison.id == Trial.comparison_id)
            .where(Trial.id == trial_id)
        ).first()
        if row is None:
            log.warning("trial %s does not exist; dropping the message", trial_id)
            return Outcome.MISSING
        trial, comparison = row.tuple()
        outcome: Outcome | None = None
        attempt = trial.attempts + 1  # read before the claim counts it
        # Each step is one guarded UPDATE: a trial someone holds is never taken or ended.
        if retry and trial.status == TrialStatus.RUNNING and trial.lease_owner == owner:
            attempt = trial.attempts  # an earlier try's claim reached the database
            renew_lease(s, trial_id, owner=owner, lease_seconds=settings.lease_seconds)
        elif comparison.cancel_requested and end_unclaimed(
            s, trial_id, status=TrialStatus.CANCELLED, stop_reason=StopReason.CANCELLED
        ):
            outcome = Outcome.CANCELLED  # a trial of a cancelled comparison never starts
        elif claim_trial(
            s,
            trial_id,
            owner=owner,
            worker=_worker_name(),
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        ):
            pass
        elif end_unclaimed(
            s,
            trial_id,
            status=TrialStatus.FAILED,
            min_attempts=settings.max_attempts,
            error=attempts_exhausted(trial.attempts, settings.max_attempts),
        ):
            outcome = Outcome.FAILED
        else:
            with log_context(comparison_id=comparison.id):
                log.info(
                    "trial %s is not claimable (status %s); duplicate delivery",
                    trial_id,
                    trial.status,
                )
            return Outcome.DUPLICATE
        # One of the tenant's trials left the broker: its next unsent ones go at commit.
        top_up(s, comparison.tenant)
        return _Decided(
            comparison_id=comparison.id,
            spec=comparison.spec,
            variant_index=trial.variant_index,
            seed=int(trial.seed),
            attempt=attempt,
            outcome=outcome,
            replicate=int(trial.replicate or 0),
        )


def _run_trial(trial_id: str) -> str:
    owner = f"{_worker_name()}:{uuid.uuid4().hex[:8]}"
    tries = 0

    def decide() -> _Decided | Outcome:
        nonlocal tries
        tries += 1
        return _decide(trial_id, owner, retry=tries > 1)

    try:
        decided = with_db_retries(f"trial {trial_id}: claim", decide)
    except Exception as exc:
        if not transient(exc):
            raise
        # Nothing was decided, so the message is all that remembers the trial: acking it
        # (acks_late acks a failure too) would strand the trial queued. Back on the queue
        # it goes, to be tried again; the sweeper re-sends it if even that is lost.
        log.warning(
            "trial %s: the database is unreachable (%s); the message goes back to the queue",
            trial_id,
            exc,
        )
        raise Reject(exc, requeue=True) from exc
    if isinstance(decided, Outcome):
        return decided
    comparison_id, spec = decided.comparison_id, decided.spec
    with log_context(comparison_id=comparison_id):
        if decided.outcome is not None:
            remove_checkpoint(get_settings(), trial_id)
            _finalize(comparison_id)
            return decided.outcome
        log.info(
            "trial %s claimed: %s seed %d (attempt %d)",
            trial_id,
            spec.variants[decided.variant_index].name,
            decided.seed,
            decided.attempt,
        )
        return _run_claimed(
            trial_id,
            comparison_id,
            spec,
            decided.variant_index,
            decided.seed,
            owner,
            attempt=decided.attempt,
            replicate=decided.replicate,
        )


def _run_claimed(
    trial_id: str,
    comparison_id: str,
    spec: StoredSpec,
    variant_index: int,
    seed: int,
    owner: str,
    *,
    attempt: int,
    replicate: int = 0,
) -> str:
    """Train a trial this worker holds the lease of (its ``attempt``-th), and finish its
    comparison if last."""
    settings = get_settings()
    outcome: str = Outcome.FAILED
    budget = float(spec.training.max_seconds or settings.trial_max_seconds)
    try:
        with (
            PeakSampler(trial_id),
            LeaseRenewal(trial_id, owner, settings.lease_seconds, budget + 3600) as lease,
        ):
            run = TrialRun(
                trial_id,
                comparison_id,
                variant_index,
                seed,
                owner,
                attempt,
                lease,
                settings,
                replicate=replicate,
            )
            outcome = _train(run, spec)
    except LeaseLost:
        log.warning("trial %s: lease lost; another worker owns it now", trial_id)
        return Outcome.LEASE_LOST
    except Exception as exc:
        if transient(exc):
            _hand_back(trial_id, owner, exc)
            return Outcome.RETRY
        log.exception("trial %s failed", trial_id)
        with session_scope() as s:
            ended = finish_trial(
                s, trial_id, owner=owner, status=TrialStatus.FAILED, error=_problem(exc)
            )
        if ended:
            remove_checkpoint(settings, trial_id)
    _finalize(comparison_id)
    # The report's inputs changed: compute it here, off the api's request path.
    refresh(comparison_id)
    return outcome


def _hand_back(trial_id: str, owner: str, exc: BaseException) -> None:
    """The database went away mid-trial: give the trial back to the queue (it resumes from its
    checkpoint), or, while the database is still away, leave its lease to expire."""
    try:
        with session_scope() as s:
            released = release_trial(s, trial_id, owner=owner)
    except Exception as again:
        if not transient(again):
            raise
        log.warning(
            "trial %s: the database is unreachable (%s); the sweeper takes the trial back "
            "when its lease expires",
            trial_id,
            exc,
        )
        return
    if released:
        log.warning(
            "trial %s: the database was unreachable (%s); handed back to the queue, to resume "
            "from its checkpoint",
            trial_id,
            exc,
        )


def _finalize(comparison_id: str) -> None:
    """Finish the comparison if its last trial ended, or add the next round of adaptive seeds,
    which its commit sends (``core.trials.dispatch``; the sweeper does either if this cannot)."""
    try:
        with session_scope() as s:
            finalize_comparison(s, comparison_id)
    except Exception as exc:
        if not transient(exc):
            raise
        log.warning("comparison %s: not finalized, database unreachable (%s)", comparison_id, exc)


def _ended_by_us(
    session: Session, trial_id: str, status: str, attempt: int, train_seconds: float
) -> bool:
    """Whether the trial already holds this attempt's result: a retried result write whose
    first try committed before the connection dropped finds the lease released by itself.
    Another owner would have counted another attempt; the sweeper ends a trial without
    train_seconds or with another status."""
    row = session.execute(
        select(Trial.status, Trial.attempts, Trial.worker, Trial.train_seconds).where(
            Trial.id == trial_id, Trial.lease_owner.is_(None)
        )
    ).first()
    return row is not None and tuple(row) == (status, attempt, _worker_name(), train_seconds)


def _cancel_requested(comparison_id: str) -> bool:
    with session_scope() as s:
        return bool(
            s.scalar(select(Comparison.cancel_requested).where(Comparison.id == comparison_id))
        )


@dataclass
class TrialRun:
    """One claimed attempt at a trial: its ids, the lease it holds (``owner``, renewed by
    ``lease``) and which attempt it is. It is the ``TrainingHooks`` training talks to
    (``should_stop``, ``on_epoch``, ``on_resume``, ``guard_commit``: each a guarded write or
    read under the lease), and ``commit_result`` stores what training produced."""

    trial_id: str
    comparison_id: str
    variant_index: int
    seed: int
    owner: str
    attempt: int
    lease: LeaseRenewal
    settings: Settings = field(default_factory=get_settings)
    replicate: int = 0  # 0: the variant's trial at its seed; k: its k-th replicate there
    stage: str = TrialStage.TEST
    config: dict[str, Any] | None = None  # the tuned knobs (None: the spec's own)
    spec: StoredSpec | None = None  # set by _train; a tuning trial's pruner reads it
    pruned: bool = False

    @property
    def resumed(self) -> bool:
        return self.attempt > 1

    def should_stop(self) -> str | None:
        # Rate-limited by the caller (worker.training asks about once a second).
        if self.lease.lost.is_set():
            raise LeaseLost(self.trial_id)
        if self.pruned:
            return StopReason.PRUNED
        try:
            return StopReason.CANCELLED if _cancel_requested(self.comparison_id) else None
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning(
                "trial %s: cancel check skipped, database unreachable (%s)", self.trial_id, exc
            )
            return None

    def cancel_before_training(self) -> str:
        """End the trial cancelled (nothing trained); its folder goes."""
        with session_scope() as s:
            if not finish_trial(
                s,
                self.trial_id,
                owner=self.owner,
                status=TrialStatus.CANCELLED,
                stop_reason=StopReason.CANCELLED,
            ):
                raise LeaseLost(self.trial_id)
        remove_checkpoint(self.settings, self.trial_id)
        log.info("trial %s cancelled before training", self.trial_id)
        return Outcome.CANCELLED

    def on_resume(self, epochs: int, row: Mapping[str, float] | None) -> float:
        # The time budget covers the whole trial: an attempt gets what is left of it. A first
        # attempt has nothing stored and skips the round trip.
        if not self.resumed and epochs == 0:
            return 0.0

        def rewind() -> float:
            with session_scope() as s:
                return rewind_trial(
                    s,
                    self.trial_id,
                    owner=self.owner,
                    epoch=epochs,
                    lease_seconds=self.settings.lease_seconds,
                    row=row,
                )

        return with_db_retries(f"trial {self.trial_id}: rewind", rewind)

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        values = {k: float(v) for k, v in row.items() if k not in ("seconds", "epoch")}

        def write() -> None:
            with session_scope() as s:
                upsert_epoch(
                    s,
                    self.trial_id,
                    owner=self.owner,
                    epoch=epoch,
                    values=values,
                    seconds=row.get("seconds"),
                    lease_seconds=self.settings.lease_seconds,
                )

        with_db_retries(f"trial {self.trial_id}: epoch {epoch}", write)
        spec = self.spec
        if self.stage == TrialStage.TUNING and spec is not None:
            self.pruned = with_db_retries(
                f"trial {self.trial_id}: prune",
                lambda: prune_now(spec, self.comparison_id, self.trial_id, self.config),
            )

    def guard_commit(self, commit: Callable[[], None]) -> None:
        # The checkpoint's commit runs while this transaction holds the trial's row, renewed
        # for us: a sweeper or claim cannot take the trial between the check and the rename.
        def guarded() -> None:
            with session_scope() as s:
                renew_lease(
                    s, self.trial_id, owner=self.owner, lease_seconds=self.settings.lease_seconds
                )
                commit()

        with_db_retries(f"trial {self.trial_id}: checkpoint", guarded)

    def commit_result(self, result: TrainResult, status: TrialStatus, trial_hash: str) -> None:
        """Store the trial's result (and its analysis, in the same transaction), retried while
        the database is away; raises LeaseLost when the trial is no longer ours."""
        from worker.analysis import store_analysis

        tries = 0

        def commit() -> bool:
            nonlocal tries
            tries += 1
            with session_scope() as s:
                if tries > 1 and _ended_by_us(
                    s, self.trial_id, status, self.attempt, result.train_seconds
                ):
                    return True  # an earlier try committed; only its answer was lost
                # Over every stored epoch, including those trained before a resume.
                stored = s.scalars(
                    select(EpochMetric.values).where(EpochMetric.trial_id == self.trial_id)
                )
                candidates = [
                    float(v["val_accuracy"]) for v in stored if v.get("val_accuracy") is not None
                ]
                if result.best_val_accuracy is not None:
                    candidates.append(result.best_val_accuracy)
                # The result columns training produces, under their own names.
                values = {name: getattr(result, name) for name in TRAINED_COLUMNS}
                values["test_metrics"] = result.test_metrics or None  # None: not evaluated
                values["best_val_accuracy"] = max(candidates) if candidates else None
                ended = finish_trial(
                    s,
                    self.trial_id,
                    owner=self.owner,
                    status=status,
                    trial_hash=trial_hash,
                    **values,
                )
                if ended:  # the analysis commits with the result, or not at all
                    store_analysis(s, self.trial_id, result.analysis)
                return ended

        if not with_db_retries(f"trial {self.trial_id}: result", commit):
            raise LeaseLost(self.trial_id)


def _trial_config(run: TrialRun, spec: StoredSpec, split: Split) -> TrialConfig:
    """What ``train_trial`` is given for this attempt at the trial."""
    from worker.analysis import analyse_model
    from worker.robustness import score_corruptions
    from worker.training import EvaluationConfig, ModelConfig, ResumeConfig, TrialConfig

    variant = spec.variants[run.variant_index]
    # The variant's own settings over the comparison's, its tuned config over those.
    training, layers = trial_setup(spec, run.variant_index, stage=run.stage, config=run.config)
    # Comparisons stored before the analysis existed have no "analysis": the defaults.
    analysis = spec.analysis_or_default
    parsed = variant.model_copy(update={"layers": layers}).parse()
    assert parsed.layers is not None
    # A replicate is the control of the differences and CKA; robustness scores replicate 0.
    scored = spec.robustness is not None and run.replicate == 0
    cells = spec.robustness.cells if spec.robustness is not None and scored else []
    analyse: Analyse | None = None
    if analysis.predictions or analysis.similarity or cells:

        def analyse(model: Any, split: Split, probs: np.ndarray | None) -> Any:
            result = analyse_model(
                model, split, analysis, batch_size=training.batch_size, probs=probs
            )
            if cells:  # the variants of a seed score the same corrupted copies
                result.corruption_scores, seconds = score_corruptions(
                    model,
                    split.x_test,
                    split.y_test,
                    cells,
                    data_seed=run.seed,
                    cache_dir=run.settings.data_dir / "corruptions",
                    batch_size=training.batch_size,
                )
                log.info(
                    "trial %s: scored on %d corrupted copies in %.1f s",
                    run.trial_id,
                    len(cells),
                    seconds,
                )
            return result

    return TrialConfig(
        model=ModelConfig(parsed.layers, variant.input_shape, name=variant.name),
        split=split,
        training=training,
        seed=run.seed,
        init_seed=init_seed(run.seed, run.replicate),
        max_seconds=float(training.max_seconds or run.settings.trial_max_seconds),
        resume=ResumeConfig(checkpoint_dir=checkpoint_folder(run.settings, run.trial_id)),
        # Every trial times inference, so the report has its spread over seeds (it costs a
        # traced predict function and four batches, ~20-50 ms on a small model). The
        # evaluation's one pass over the test set also gives the predictions.
        evaluation=EvaluationConfig(
            measure_inference=True, predict_test=analysis.predictions, analyse=analyse
        )
        if run.stage == TrialStage.TEST
        else EvaluationConfig(measure_inference=False, analyse=None, test=False),
        warm_models=run.settings.warm_models,
    )


def _train(run: TrialRun, spec: StoredSpec) -> str:
    """Load data, train, evaluate and store the result; returns the trial's final status."""
    from worker.training import train_trial

    trial_id = run.trial_id
    run.stage, run.config = stage_of(trial_id)
    run.spec = spec
    split = load_split(run.settings, run.comparison_id, spec, run.seed, run.should_stop)
    if split is None:
        return run.cancel_before_training()
    result = train_trial(_trial_config(run, spec, split), hooks=run)
    if result.epochs:
        log.info(
            "trial %s: this attempt trained epochs %d-%d%s%s",
            trial_id,
            result.first_epoch,
            int(result.epochs[-1]["epoch"]),
            " (resumed from its checkpoint)" if result.first_epoch > 1 else "",
            " on a warm model" if result.warm_model else "",
        )
    elif result.first_epoch > 1:
        log.info(
            "trial %s: training had ended at epoch %d (its checkpoint says); evaluating only",
            trial_id,
            result.first_epoch - 1,
        )
    status = (
        TrialStatus.CANCELLED
        if result.stop_reason == StopReason.CANCELLED
        else TrialStatus.SUCCEEDED
    )
    # What really produced this result: the versions this worker trained with.
    key = trial_hash(
        spec,
        run.variant_index,
        run.seed,
        library_versions(),
        run.replicate,
        stage=run.stage,
        config=run.config,
    )
    run.commit_result(result, status, key)
    # The result is committed: nothing will resume this trial (a cancelled one included).
    remove_checkpoint(run.settings, trial_id)
    log.info("trial %s %s: test_accuracy=%s", trial_id, status, result.test_accuracy)
    return status
