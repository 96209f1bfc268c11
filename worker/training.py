"""Train and evaluate one trial (one architecture, one seed): pure Keras, no Celery, no DB.

TensorFlow and Keras are imported inside functions only: the Celery parent process imports
this module, and TensorFlow is not fork-safe.

Input pipeline: ``fit`` on the NumPy arrays directly (Keras shuffles them per epoch under
the trial seed), as a plain Keras script does; ``tf.data`` measured no faster
(bench/README.md, "Measured design decisions").

Stop checks run in ``on_train_batch_begin`` (from the second batch on) and at each epoch
end, never in ``on_train_batch_end``: a callback that overrides the batch-end hook turns off
Keras's asynchronous batch-end dispatch and forces a device sync per batch, which a plain
``fit`` does not pay. The price is a lag of one batch: a stop seen before batch k runs
batch k and then breaks out of the epoch (Keras 3 checks ``stop_training`` after each
batch). The caller's ``should_stop`` is also asked right before ``fit`` and right before the
evaluation, so a cancel is honoured within a poll interval in every phase; a run the caller
stopped is not evaluated (its result would describe a half-trained model).

Steps: ``train_trial`` takes one ``TrialConfig`` (worker/trial_config.py) and runs three
steps on one ``_Attempt``: ``_resume`` (the checkpoint, or the seed's start), ``_fit`` (the
epochs left, within the time budget) and ``_finish`` (the stop reason, the final checkpoint,
the evaluation). The Keras objects it compiles with come from worker/keras_objects.py.

Warm models: see worker/warm_models.py (a process keeps its last compiled models).

Resume: see worker/checkpoint.py (the atomic resume point, and what a resumed trial
keeps).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.spec import TrainingSpec
from core.status import StopReason
from worker.checkpoint import Checkpoint, Resume
from worker.keras_objects import compile_model, labels_for, scores_from
from worker.trial_config import EvaluationConfig, ModelConfig, ResumeConfig, TrialConfig
from worker.warm_models import (
    PROCESS_MODELS,
    Snapshot,
    clear_warm_models,
    optimizer_snapshot,
    reset,
    warm_key,
)

__all__ = [
    "EvaluationConfig",
    "FunctionHooks",
    "ModelConfig",
    "ResumeConfig",
    "TrainResult",
    "TrainingHooks",
    "TrialConfig",
    "clear_warm_models",
    "train_trial",
]

log = logging.getLogger("archbench.worker")

_POLL_SECONDS = 1.0  # between the caller's stop checks (one database query each)
_INFERENCE_BATCH = 256


class TrainingHooks(Protocol):
    """What training asks of its caller while it runs (worker.tasks' trial run implements it;
    ``FunctionHooks`` wraps plain functions, or none)."""

    def should_stop(self) -> str | None:
        """A stop reason (a cancel, a lost lease) or None; asked about once a second
        (``_POLL_SECONDS``), right before ``fit`` and right before the evaluation."""
        ...

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        """A finished epoch (1-based) and its row, after its checkpoint is committed."""
        ...

    def on_resume(self, epochs: int, row: Mapping[str, float] | None) -> float:
        """Called before training with the finished epochs the checkpoint held (0: none, or
        it could not be used) and that epoch's row as the checkpoint recorded it (None when
        it has none); returns the seconds the stored epochs already took, which the time
        budget (``max_seconds``, ``training.max_seconds``) is charged with."""
        ...

    def guard_commit(self, commit: Callable[[], None]) -> None:
        """Run a checkpoint's ``commit`` while holding the trial (raise when it is no longer
        ours)."""
        ...


class FunctionHooks:
    """``TrainingHooks`` from plain functions, each optional (tests, benchmarks, scripts):
    no stop, nothing reported, nothing spent before, commits run as they come."""

    def __init__(
        self,
        *,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        on_resume: Callable[[int, Mapping[str, float] | None], float] | None = None,
        lease_guard: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._on_epoch, self._should_stop = on_epoch, should_stop
        self._on_resume, self._lease_guard = on_resume, lease_guard

    def should_stop(self) -> str | None:
        return self._should_stop() if self._should_stop is not None else None

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        if self._on_epoch is not None:
            self._on_epoch(epoch, row)

    def on_resume(self, epochs: int, row: Mapping[str, float] | None) -> float:
        return self._on_resume(epochs, row) if self._on_resume is not None else 0.0

    def guard_commit(self, commit: Callable[[], None]) -> None:
        if self._lease_guard is not None:
            self._lease_guard(commit)
        else:
            commit()


@dataclass
class TrainResult:
    """What one trial produced: per-epoch logs, test scores, timings and sizes.

    The test scores are None when the caller stopped the run (it was not evaluated). Each
    of ``core.store.tables.TRAINED_COLUMNS`` is a field here, stored under its own name.
    ``train_seconds`` covers every attempt: the seconds the resumed epochs took before
    (``on_resume``) plus this attempt's training.
    """

    epochs: list[dict[str, float]]
    test_loss: float | None
    test_accuracy: float | None
    test_metrics: dict[str, float]
    best_val_accuracy: float | None
    train_seconds: float
    stop_reason: str | None
    params: int
    trainable_params: int
    inference_ms_per_sample: float | None
    device: str
    first_epoch: int
    warm_model: bool = False  # reused this process's compiled model (see the module doc)
    # What ``analyse(model, split, probs)`` returned on the trained model (worker.analysis).
    analysis: Any = None


@dataclass
class _Monitor:
    """Plain-Python state shared by the Keras callbacks of one ``fit``."""

    on_epoch: Callable[[int, dict[str, float]], None] | None
    should_stop: Callable[[], str | None] | None
    deadline: float | None
    stop_reason: str | None = None
    stopped_by_caller: bool = False
    interrupted: bool = False
    first_epoch: int | None = None
    epochs: list[dict[str, float]] = field(default_factory=list)
    _next_poll: float = 0.0
    _epoch_start: float = 0.0

    def check(self, force: bool = False) -> bool:
        """Decide whether to stop now (``force``: ask the caller however recently it was
        asked); remembers the first reason."""
        if self.stop_reason is not None:
            return True
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.stop_reason = StopReason.TIME_BUDGET
            return True
        if self.should_stop is not None and (force or now >= self._next_poll):
            return self.ask_caller()
        return False

    def ask_caller(self) -> bool:
        """Ask ``should_stop`` now, whenever it was last asked; True when it says stop."""
        if self.stopped_by_caller:
            return True
        if self.should_stop is None:
            return False
        self._next_poll = time.monotonic() + _POLL_SECONDS
        reason = self.should_stop()
        if reason:
            self.stop_reason = reason
            self.stopped_by_caller = True
            return True
        return False

    def epoch_begin(self, epoch: int) -> None:
        """Start timing the 0-based ``epoch``."""
        if self.first_epoch is None:
            self.first_epoch = epoch + 1
        self.interrupted = False
        self._epoch_start = time.perf_counter()

    def batch_begin(self, batch: int, steps: int | None) -> bool:
        """Check before ``batch``; a stop now ends the epoch after this batch."""
        if batch == 0 or not self.check():
            return False
        self.interrupted = steps is None or batch + 1 < steps
        return True

    def epoch_end(
        self,
        epoch: int,
        logs: Mapping[str, Any] | None,
        save: Callable[[int, dict[str, float]], None] | None = None,
    ) -> bool:
        """Record a finished epoch, ``save`` it (the checkpoint, committed first), then report
        it; returns whether to stop after it."""
        if self.interrupted:
            return True
        row: dict[str, float] = {"epoch": float(epoch + 1)}
        for k, v in (logs or {}).items():
            try:
                row[k] = float(v)
            except (TypeError, ValueError):
                continue
        row["seconds"] = time.perf_counter() - self._epoch_start
        self.epochs.append(row)
        if self.stop_reason is None and not math.isfinite(row.get("loss", 0.0)):
            # The training loss became NaN or infinite: nothing after it can recover, so the
            # trial stops here and is evaluated as it is (a divergence of the architecture).
            self.stop_reason = StopReason.DIVERGED
        if save is not None:
            save(epoch + 1, row)
        if self.on_epoch is not None:
            self.on_epoch(epoch + 1, row)
        return self.check()


def _callbacks(
    monitor: _Monitor, training: TrainingSpec, checkpoint: Checkpoint | None
) -> tuple[list[Any], Any]:
    """The Keras callbacks of one fit, and the EarlyStopping among them (or None)."""
    import keras

    class Watcher(keras.callbacks.Callback):  # type: ignore[misc]
        # No batch-end hook: it would turn off Keras's asynchronous batch-end dispatch.
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            monitor.epoch_begin(epoch)

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if monitor.batch_begin(batch, self.params.get("steps")):
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            # The checkpoint is committed before the epoch's row is written (see the module
            # doc), every epoch, the last one included.
            save = None if checkpoint is None else functools.partial(checkpoint.save, self.model)
            if monitor.epoch_end(epoch, logs, save):
                self.model.stop_training = True

    callbacks: list[Any] = [Watcher()]
    early = None
    if training.early_stopping is not None:
        es = training.early_stopping
        early = keras.callbacks.EarlyStopping(
            monitor=es.monitor,
            patience=es.patience,
            min_delta=es.min_delta,
            restore_best_weights=es.restore_best_weights,
        )
        callbacks.append(early)
    return callbacks, early


@contextmanager
def _dtype_policy(training: TrainingSpec, device: str) -> Iterator[None]:
    """Build under a mixed policy when asked (float16 on a GPU, bfloat16 on a CPU).

    The policy is process-global in Keras, and a worker serves trial after trial, so it is
    restored as soon as the model is built (layers keep the policy they were made with).
    """
    import keras

    if not training.mixed_precision:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if device.startswith("GPU") else "mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _inference_ms(model: Any, x: np.ndarray) -> float:
    """Milliseconds per sample of a compiled forward pass (best of 3, after a warm-up)."""
    batch = x[:_INFERENCE_BATCH]
    if len(batch) == 0:
        return float("nan")
    model.predict_on_batch(batch)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict_on_batch(batch)
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best / len(batch)


def _start_model(
    initial: Any, key: str, training: TrainingSpec, warm_models: int
) -> tuple[Any, Snapshot | None, bool]:
    """A compiled model holding ``initial``'s weights: the warm one for ``key`` when this
    process has it (its traced functions kept), else ``initial`` compiled. Returns the model,
    its optimizer snapshot (None when models are not kept warm) and whether it was warm."""
    hit = None
    if warm_models > 0:
        hit = PROCESS_MODELS.take(key)
    if hit is not None:
        model, snapshot = hit
        if [tuple(v.shape) for v in model.variables] == [tuple(v.shape) for v in initial.variables]:
            reset(model, initial, snapshot)
            return model, snapshot, True
    compile_model(initial, training)
    if warm_models <= 0:
        return initial, None, False
    initial.optimizer.build(initial.trainable_variables)
    return initial, optimizer_snapshot(initial.optimizer), False


def _out_of_memory(exc: BaseException) -> bool:
    name = type(exc).__name__
    return (
        isinstance(exc, MemoryError)
        or name == "ResourceExhaustedError"
        or ("out of memory" in str(exc).lower())
    )


def train_trial(config: TrialConfig, hooks: TrainingHooks | None = None) -> TrainResult:
    """Build (or reuse a warm model, see above), then resume, fit and finish one trial, each a
    step of its own; exceptions propagate to the caller.

    ``hooks`` (``TrainingHooks``; none by default) is how the run talks to its caller: the
    stop checks, each epoch's row, the resume, the checkpoint's commits. The checkpoint
    folder is left for the caller to remove.
    """
    import keras

    from models.builder import build_model
    from worker.devices import configure_devices

    device = configure_devices()
    built, training = config.model, config.training

    def seeded_model() -> Any:
        # Draws the initial weights and the layers' seed generators (dropout, augmentation)
        # from the initialisation seed, exactly as a new model would (core.seeding).
        keras.utils.set_random_seed(config.initialisation_seed)
        with _dtype_policy(training, device):
            return build_model(built.layers, tuple(built.input_shape), name=built.name)

    initial = seeded_model()
    num_classes = built.num_classes
    if num_classes is None:
        num_classes = int(initial.output_shape[-1])
    key = warm_key(built.layers, tuple(built.input_shape), training, num_classes, device)
    snapshot: Snapshot | None = None
    try:
        model, snapshot, warm = _start_model(initial, key, training, config.warm_models)

        def back_to_the_seed() -> Any:
            fresh = seeded_model()
            if snapshot is None:
                compile_model(fresh, training)
                return fresh
            reset(model, fresh, snapshot)
            return model

        attempt = _Attempt(config, hooks or FunctionHooks(), device, num_classes, model)
        _resume(attempt, back_to_the_seed)
        result = _finish(attempt, _fit(attempt))
    except BaseException as exc:
        if _out_of_memory(exc):
            clear_warm_models()  # give the device memory of every warm model back
        raise
    if snapshot is not None:
        # The same object back_to_the_seed resets.
        PROCESS_MODELS.keep(key, model, snapshot, config.warm_models)
    result.warm_model = warm
    return result


@dataclass
class _Attempt:
    """One attempt at a trial as its steps go: its config and hooks, what this process
    resolved (the device, the classes), the model it trains, and what ``_resume`` found."""

    config: TrialConfig
    hooks: TrainingHooks
    device: str
    num_classes: int
    model: Any
    checkpoint: Checkpoint | None = None
    resume: Resume = field(default_factory=Resume)
    spent: float = 0.0  # the seconds the resumed epochs already took (``on_resume``)

    @property
    def trained(self) -> bool:
        """Training already ended (final checkpoint, or every planned epoch done): the
        attempt only evaluates."""
        return self.resume.final or self.resume.epoch >= self.config.training.epochs


@dataclass(frozen=True)
class _Fitted:
    """What ``_fit`` leaves for ``_finish``."""

    monitor: _Monitor
    early: Any  # the EarlyStopping callback, or None
    train_seconds: float  # over every attempt: ``spent`` plus this attempt's fit


def _resume(attempt: _Attempt, back_to_the_seed: Callable[[], Any]) -> None:
    """Step 1: load the resume point into the model (back to the seed's initial state when
    it is unusable), then tell the caller what it held (``on_resume``, which answers the
    seconds those epochs took)."""
    folder = attempt.config.resume.checkpoint_dir
    if folder is not None:
        attempt.checkpoint = Checkpoint(folder, attempt.hooks.guard_commit)
        resume = attempt.checkpoint.restore(attempt.model)
        if resume is None:  # an unusable checkpoint: from the seed's initial state
            attempt.model, resume = back_to_the_seed(), Resume()
        attempt.resume = resume
    attempt.spent = attempt.hooks.on_resume(attempt.resume.epoch, attempt.resume.row)


def _fit(attempt: _Attempt) -> _Fitted:
    """Step 2: fit the epochs left, within what is left of the time budget, unless training
    already ended or the caller says stop first; each epoch is checkpointed, then reported."""
    import keras

    config, training, split = attempt.config, attempt.config.training, attempt.config.split
    budgets = [b for b in (config.max_seconds, training.max_seconds) if b is not None]
    start = time.monotonic()
    monitor = _Monitor(
        on_epoch=attempt.hooks.on_epoch,
        should_stop=attempt.hooks.should_stop,
        deadline=start + max(min(budgets) - attempt.spent, 1e-3) if budgets else None,
    )
    callbacks, early = _callbacks(monitor, training, attempt.checkpoint)
    validation = (
        (split.x_val, labels_for(split.y_val, training, attempt.num_classes))
        if len(split.y_val)
        else None
    )
    t0 = time.perf_counter()
    if not attempt.trained and not monitor.check(force=True):
        # The data order (and every other draw fit makes) follows the data seed alone, not
        # how many numbers building this architecture drew nor the initialisation seed: at
        # seed s every variant and every replicate sees the same shuffles (a paired design
        # varies the architecture only; a replicate its initialisation only).
        keras.utils.set_random_seed(config.seed)
        attempt.model.fit(
            split.x_train,
            labels_for(split.y_train, training, attempt.num_classes),
            batch_size=training.batch_size,
            epochs=training.epochs,
            initial_epoch=attempt.resume.epoch,
            shuffle=True,
            validation_data=validation,
            callbacks=callbacks,
            verbose=0,
        )
    return _Fitted(monitor, early, attempt.spent + time.perf_counter() - t0)


def _finish(attempt: _Attempt, fitted: _Fitted) -> TrainResult:
    """Step 3: why training ended, the final checkpoint, then the evaluation. A run the
    caller stopped is not evaluated (its result would describe a half-trained model); the
    caller removes its folder."""
    monitor, early, resume = fitted.monitor, fitted.early, attempt.resume
    # Asked again right before the evaluation: a cancel now is not made to wait for it.
    stopped = monitor.ask_caller()
    stop_reason = monitor.stop_reason
    if stop_reason is None and early is not None and early.stopped_epoch > 0:
        stop_reason = StopReason.EARLY_STOPPING
    if attempt.trained and not stopped:
        stop_reason = resume.stop_reason
    result = _result(attempt, fitted, stop_reason)
    if stopped:
        return result
    if attempt.checkpoint is not None and not attempt.trained:
        epochs_done = int(monitor.epochs[-1]["epoch"]) if monitor.epochs else resume.epoch
        restored_best = (
            early is not None and early.restore_best_weights and early.best_weights is not None
        )
        attempt.checkpoint.finish(
            attempt.model, epochs_done, stop_reason, fresh=monitor.interrupted or restored_best
        )
    return _evaluate(attempt, result)


def _result(attempt: _Attempt, fitted: _Fitted, stop_reason: str | None) -> TrainResult:
    """The result before the evaluation: the epochs, the timings, the sizes."""
    monitor, model = fitted.monitor, attempt.model
    first_epoch = monitor.first_epoch
    if first_epoch is None:  # nothing trained by this attempt
        first_epoch = attempt.resume.epoch + 1
    rows = (*attempt.config.resume.previous_epochs, *monitor.epochs)
    val_acc = [float(e["val_accuracy"]) for e in rows if "val_accuracy" in e]
    return TrainResult(
        epochs=monitor.epochs,
        test_loss=None,
        test_accuracy=None,
        test_metrics={},
        best_val_accuracy=max(val_acc) if val_acc else None,
        train_seconds=fitted.train_seconds,
        stop_reason=stop_reason,
        params=int(model.count_params()),
        trainable_params=int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        inference_ms_per_sample=None,
        device=attempt.device,
        first_epoch=first_epoch,
    )


def _evaluate(attempt: _Attempt, result: TrainResult) -> TrainResult:
    """The trained model's test scores (from one predict pass when ``predict_test``: the
    analysis reuses its probabilities), its inference time and its analysis, into
    ``result``."""
    model, split, training = attempt.model, attempt.config.split, attempt.config.training
    evaluation = attempt.config.evaluation
    if not evaluation.test:
        return result  # a tuning trial: the test split is never evaluated
    probs: np.ndarray | None = None
    if evaluation.predict_test and len(split.y_test):
        probs = np.asarray(model.predict(split.x_test, batch_size=training.batch_size, verbose=0))
        scores = scores_from(model, training, attempt.num_classes, split.y_test, probs)
    else:
        scores = model.evaluate(
            split.x_test,
            labels_for(split.y_test, training, attempt.num_classes),
            batch_size=training.batch_size,
            verbose=0,
            return_dict=True,
        )
    result.test_metrics = {k: float(v) for k, v in scores.items()}
    result.test_loss = result.test_metrics["loss"]
    result.test_accuracy = result.test_metrics.get("accuracy")
    if evaluation.measure_inference:
        result.inference_ms_per_sample = _inference_ms(model, split.x_test)
    if evaluation.analyse is not None:
        result.analysis = evaluation.analyse(model, split, probs)
    return result
