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

Warm models: see worker/warm_models.py (a process keeps its last compiled models).

Resume: see worker/checkpoint.py (the atomic resume point, and what a resumed trial
keeps).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.optimizers import (
    OPTIMIZERS,
    ExponentialSchedule,
    PiecewiseSchedule,
    WarmupCosineSchedule,
    takes,
)
from core.spec import TrainingSpec
from core.status import StopReason
from worker.checkpoint import Checkpoint, Resume
from worker.datasets import Split
from worker.warm_models import (
    PROCESS_MODELS,
    Snapshot,
    clear_warm_models,
    optimizer_snapshot,
    reset,
    warm_key,
)

if TYPE_CHECKING:
    from models.spec import Layer

__all__ = [
    "OPTIMIZERS",
    "FunctionHooks",
    "TrainResult",
    "TrainingHooks",
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

    The test scores are None when the caller stopped the run (it was not evaluated).
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


@functools.cache
def _optimizer_classes() -> dict[str, Any]:
    """Our optimizer names to Keras optimizer classes that never resolve an initializer name.

    Keras's optimizers create their slots (momenta, velocities) with ``initializer="zeros"``,
    a name, which ``keras.initializers.get`` resolves through ``deserialize_keras_object``.
    Each class here is the Keras class with ``add_variable`` given the initializer object
    instead (from a closed table), so compiling and training call no Keras deserialization
    (tests/integration/test_security_keras.py traps it). Same class name, same variables,
    same values.
    """
    import keras

    made: dict[str, Any] = {"zeros": keras.initializers.Zeros, "ones": keras.initializers.Ones}

    def closed(base: Any) -> Any:
        class Closed(base):  # type: ignore[misc]
            def add_variable(
                self, shape: Any, initializer: Any = "zeros", *args: Any, **kw: Any
            ) -> Any:
                if isinstance(initializer, str):
                    initializer = made[initializer]()
                return super().add_variable(shape, initializer, *args, **kw)

        Closed.__name__ = Closed.__qualname__ = base.__name__
        return Closed

    classes = {name: getattr(keras.optimizers, cls) for name, cls in OPTIMIZERS.items()}
    return {name: closed(cls) for name, cls in classes.items()}


def _loss_and_metrics(training: TrainingSpec) -> tuple[Any, list[Any]]:
    """The loss object and one metric object per ``training.metrics`` name, fresh, for
    ``_compile`` and ``_scores_from`` alike."""
    import keras

    sparse = training.loss == "sparse_categorical_crossentropy"
    loss = (
        keras.losses.SparseCategoricalCrossentropy()
        if sparse
        else keras.losses.CategoricalCrossentropy(label_smoothing=training.label_smoothing or 0.0)
    )
    metrics: list[Any] = []
    for name in training.metrics:
        # "accuracy" is what Keras picks for these labels: integer labels with the sparse
        # loss, one-hot labels with the categorical one (see _labels); never binary, as the
        # output has num_classes >= 2 units.
        if name == "accuracy":
            metric = (
                keras.metrics.SparseCategoricalAccuracy
                if sparse
                else keras.metrics.CategoricalAccuracy
            )
        elif name == "sparse_top_k_categorical_accuracy":
            metric = (
                keras.metrics.SparseTopKCategoricalAccuracy
                if sparse
                else keras.metrics.TopKCategoricalAccuracy
            )
        else:  # a new KerasMetric must be added here first
            raise AssertionError(f"no Keras metric object for {name!r}")
        metrics.append(metric(name=name))
    return loss, metrics


def _learning_rate(training: TrainingSpec) -> Any:
    """The number, or the ``keras.optimizers.schedules`` object of the spec's schedule (over
    optimizer steps, one per batch)."""
    from keras.optimizers import schedules

    rate = training.learning_rate
    if isinstance(rate, float | int):
        return rate
    if isinstance(rate, PiecewiseSchedule):
        return schedules.PiecewiseConstantDecay(list(rate.boundaries), list(rate.values))
    if isinstance(rate, ExponentialSchedule):
        return schedules.ExponentialDecay(
            rate.initial_learning_rate, rate.decay_steps, rate.decay_rate, staircase=rate.staircase
        )
    warmup: dict[str, Any] = {}
    if isinstance(rate, WarmupCosineSchedule):
        warmup = {"warmup_target": rate.warmup_target, "warmup_steps": rate.warmup_steps}
    return schedules.CosineDecay(
        rate.initial_learning_rate, rate.decay_steps, alpha=rate.alpha, **warmup
    )


def _optimizer(training: TrainingSpec) -> Any:
    """The optimizer object: its closed class (``_optimizer_classes``), the learning rate or
    schedule, and the optimizer arguments the spec sets (validation let through only those
    the optimizer takes; unset ones keep Keras's defaults)."""
    given = {name: getattr(training, name) for name in takes(training.optimizer)}
    kwargs = {name: value for name, value in given.items() if value is not None}
    return _optimizer_classes()[training.optimizer](
        learning_rate=_learning_rate(training), **kwargs
    )


def _compile(model: Any, training: TrainingSpec, num_classes: int) -> None:
    """Compile with objects only: the optimizer, loss and metrics come from closed tables,
    never as names for Keras to look up (which would go through its deserialization). Each
    is the object Keras itself makes for the name, so the numbers are the same."""
    optimizer = _optimizer(training)
    loss, metrics = _loss_and_metrics(training)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        jit_compile="auto" if training.jit_compile is None else training.jit_compile,
    )


def _labels(y: np.ndarray, training: TrainingSpec, num_classes: int) -> np.ndarray:
    """Integer labels as the loss wants them (one-hot for categorical_crossentropy)."""
    if training.loss == "sparse_categorical_crossentropy":
        return y
    onehot: np.ndarray = np.eye(num_classes, dtype=np.float32)[y]
    return onehot


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
    initial: Any, key: str, training: TrainingSpec, num_classes: int, warm_models: int
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
    _compile(initial, training, num_classes)
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


def train_trial(
    *,
    layers: Sequence[Layer],
    input_shape: tuple[int, ...],
    split: Split,
    training: TrainingSpec,
    seed: int,
    hooks: TrainingHooks | None = None,
    checkpoint_dir: Path | None = None,
    max_seconds: float | None = None,
    model_name: str = "model",
    num_classes: int | None = None,
    previous_epochs: Sequence[Mapping[str, float]] = (),
    measure_inference: bool = True,
    warm_models: int = 4,
    analyse: Callable[[Any, Split, np.ndarray | None], Any] | None = None,
    predict_test: bool = False,
) -> TrainResult:
    """Build (or reuse a warm model, see above), fit and evaluate one trial; exceptions
    propagate to the caller. ``warm_models=0`` builds and compiles a new model every time.

    ``hooks`` (``TrainingHooks``; none by default) is how the run talks to its caller: the
    stop checks, each epoch's row, the resume, the checkpoint's commits. The checkpoint
    folder is left for the caller to remove.
    ``analyse(model, split, probs)`` runs on the trained, evaluated model (not on a stopped
    one); its answer is ``TrainResult.analysis``. ``predict_test``: evaluate through one
    ``predict`` over the test set, the scores computed from its probabilities with the same
    loss, regularization and metric objects (see ``_scores_from``), and hand the
    probabilities to ``analyse`` (one forward pass over the test set instead of two).
    """
    import keras

    from models.builder import build_model
    from worker.devices import configure_devices

    device = configure_devices()

    def seeded_model() -> Any:
        # Draws the seed's initial weights and dropout states exactly as a new model would.
        keras.utils.set_random_seed(seed)
        with _dtype_policy(training, device):
            return build_model(layers, tuple(input_shape), name=model_name)

    initial = seeded_model()
    if num_classes is None:
        num_classes = int(initial.output_shape[-1])
    key = warm_key(layers, tuple(input_shape), training, num_classes, device)
    snapshot: Snapshot | None = None
    try:
        model, snapshot, warm = _start_model(initial, key, training, num_classes, warm_models)

        def back_to_the_seed() -> Any:
            fresh = seeded_model()
            if snapshot is None:
                _compile(fresh, training, num_classes)
                return fresh
            reset(model, fresh, snapshot)
            return model

        result = _fit_and_evaluate(
            model,
            back_to_the_seed,
            seed=seed,
            split=split,
            training=training,
            num_classes=num_classes,
            device=device,
            hooks=hooks if hooks is not None else FunctionHooks(),
            checkpoint_dir=checkpoint_dir,
            max_seconds=max_seconds,
            previous_epochs=previous_epochs,
            measure_inference=measure_inference,
            analyse=analyse,
            predict_test=predict_test,
        )
    except BaseException as exc:
        if _out_of_memory(exc):
            clear_warm_models()  # give the device memory of every warm model back
        raise
    if snapshot is not None:
        # The same object back_to_the_seed resets.
        PROCESS_MODELS.keep(key, model, snapshot, warm_models)
    result.warm_model = warm
    return result


def _fit_and_evaluate(
    model: Any,
    back_to_the_seed: Callable[[], Any],
    *,
    seed: int,
    split: Split,
    training: TrainingSpec,
    num_classes: int,
    device: str,
    hooks: TrainingHooks,
    checkpoint_dir: Path | None,
    max_seconds: float | None,
    previous_epochs: Sequence[Mapping[str, float]],
    measure_inference: bool,
    analyse: Callable[[Any, Split, np.ndarray | None], Any] | None = None,
    predict_test: bool = False,
) -> TrainResult:
    import keras

    checkpoint = None if checkpoint_dir is None else Checkpoint(checkpoint_dir, hooks.guard_commit)
    resume = checkpoint.restore(model) if checkpoint is not None else Resume()
    if resume is None:  # an unusable checkpoint: from the seed's initial state
        model, resume = back_to_the_seed(), Resume()
    spent = hooks.on_resume(resume.epoch, resume.row)
    # Training already ended (final checkpoint, or every planned epoch done): evaluate only.
    trained = resume.final or resume.epoch >= training.epochs

    budgets = [b for b in (max_seconds, training.max_seconds) if b is not None]
    start = time.monotonic()
    monitor = _Monitor(
        on_epoch=hooks.on_epoch,
        should_stop=hooks.should_stop,
        deadline=start + max(min(budgets) - spent, 1e-3) if budgets else None,
    )
    callbacks, early = _callbacks(monitor, training, checkpoint)
    validation = (
        (split.x_val, _labels(split.y_val, training, num_classes)) if len(split.y_val) else None
    )
    t0 = time.perf_counter()
    if not trained and not monitor.check(force=True):
        # The data order (and every other draw fit makes) follows the trial seed alone, not
        # how many numbers building this architecture drew: at seed s every variant sees the
        # same shuffles (a paired design varies the architecture only).
        keras.utils.set_random_seed(seed)
        model.fit(
            split.x_train,
            _labels(split.y_train, training, num_classes),
            batch_size=training.batch_size,
            epochs=training.epochs,
            initial_epoch=resume.epoch,
            shuffle=True,
            validation_data=validation,
            callbacks=callbacks,
            verbose=0,
        )
    train_seconds = spent + time.perf_counter() - t0
    # Asked again right before the evaluation: a cancel now is not made to wait for it.
    stopped = monitor.ask_caller()
    stop_reason = monitor.stop_reason
    if stop_reason is None and early is not None and early.stopped_epoch > 0:
        stop_reason = StopReason.EARLY_STOPPING
    if trained and not stopped:
        stop_reason = resume.stop_reason
    first_epoch = monitor.first_epoch
    if first_epoch is None:  # nothing trained by this attempt
        first_epoch = resume.epoch + 1
    val_acc = [
        float(e["val_accuracy"]) for e in (*previous_epochs, *monitor.epochs) if "val_accuracy" in e
    ]
    result = TrainResult(
        epochs=monitor.epochs,
        test_loss=None,
        test_accuracy=None,
        test_metrics={},
        best_val_accuracy=max(val_acc) if val_acc else None,
        train_seconds=train_seconds,
        stop_reason=stop_reason,
        params=int(model.count_params()),
        trainable_params=int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        inference_ms_per_sample=None,
        device=device,
        first_epoch=first_epoch,
    )
    if stopped:  # by the caller (a cancel): not evaluated; the caller removes the folder
        return result
    if checkpoint is not None and not trained:
        epochs_done = int(monitor.epochs[-1]["epoch"]) if monitor.epochs else resume.epoch
        restored_best = (
            early is not None and early.restore_best_weights and early.best_weights is not None
        )
        checkpoint.finish(
            model, epochs_done, stop_reason, fresh=monitor.interrupted or restored_best
        )
    return _evaluate(
        model,
        split,
        training,
        num_classes,
        result,
        predict_test=predict_test,
        measure_inference=measure_inference,
        analyse=analyse,
    )


def _evaluate(
    model: Any,
    split: Split,
    training: TrainingSpec,
    num_classes: int,
    result: TrainResult,
    *,
    predict_test: bool,
    measure_inference: bool,
    analyse: Callable[[Any, Split, np.ndarray | None], Any] | None,
) -> TrainResult:
    """The trained model's test scores (from one predict pass when ``predict_test``: the
    analysis reuses its probabilities), its inference time and its analysis, into
    ``result``."""
    probs: np.ndarray | None = None
    if predict_test and len(split.y_test):
        probs = np.asarray(model.predict(split.x_test, batch_size=training.batch_size, verbose=0))
        scores = _scores_from(model, training, num_classes, split.y_test, probs)
    else:
        scores = model.evaluate(
            split.x_test,
            _labels(split.y_test, training, num_classes),
            batch_size=training.batch_size,
            verbose=0,
            return_dict=True,
        )
    result.test_metrics = {k: float(v) for k, v in scores.items()}
    result.test_loss = result.test_metrics["loss"]
    result.test_accuracy = result.test_metrics.get("accuracy")
    if measure_inference:
        result.inference_ms_per_sample = _inference_ms(model, split.x_test)
    if analyse is not None:
        result.analysis = analyse(model, split, probs)
    return result


def _scores_from(
    model: Any, training: TrainingSpec, num_classes: int, y: np.ndarray, probs: np.ndarray
) -> dict[str, float]:
    """What ``model.evaluate`` returns, from the test probabilities: the compiled loss (a mean
    over examples, as evaluate's batch means weighted by batch size are) plus the layers'
    regularization losses, and each compiled metric (objects made as for ``_compile``). The
    same numbers up to float32 rounding (tests/unit/worker/test_worker_analysis.py)."""
    import keras

    labels = _labels(y, training, num_classes)
    loss_fn, metrics = _loss_and_metrics(training)
    loss = float(keras.ops.convert_to_numpy(loss_fn(labels, probs)))
    loss += sum(float(keras.ops.convert_to_numpy(x)) for x in model.losses)
    out = {"loss": loss}
    for name, metric in zip(training.metrics, metrics, strict=True):
        metric.update_state(labels, probs)
        out[name] = float(keras.ops.convert_to_numpy(metric.result()))
    return out
