"""The Keras objects a trial compiles with, from closed tables, and its scores from probabilities.

The optimizer, loss and metrics are made as objects, never passed to Keras as names: a name
goes through Keras's deserialization (``keras.initializers.get`` and friends), which training
never calls (tests/integration/test_security_keras.py traps it). Each object is the one Keras
itself makes for the name, so the numbers are the same. Keras is imported inside functions
only (see worker/training.py).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from core.optimizers import (
    OPTIMIZERS,
    ExponentialSchedule,
    PiecewiseSchedule,
    WarmupCosineSchedule,
    takes,
)
from core.spec import TrainingSpec

__all__ = ["compile_model", "labels_for", "loss_and_metrics", "optimizer_classes", "scores_from"]


@functools.cache
def optimizer_classes() -> dict[str, Any]:
    """Our optimizer names to Keras optimizer classes that never resolve an initializer name.

    Keras's optimizers create their slots (momenta, velocities) with ``initializer="zeros"``,
    a name, which ``keras.initializers.get`` resolves through ``deserialize_keras_object``.
    Each class here is the Keras class with ``add_variable`` given the initializer object
    instead (from a closed table), so compiling and training call no Keras deserialization.
    Same class name, same variables, same values.
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


def loss_and_metrics(training: TrainingSpec) -> tuple[Any, list[Any]]:
    """The loss object and one metric object per ``training.metrics`` name, fresh, for
    ``compile_model`` and ``scores_from`` alike."""
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
        # loss, one-hot labels with the categorical one (see labels_for); never binary, as the
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


def learning_rate(training: TrainingSpec) -> Any:
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


def optimizer_for(training: TrainingSpec) -> Any:
    """The optimizer object: its closed class (``optimizer_classes``), the learning rate or
    schedule, and the optimizer arguments the spec sets (validation let through only those
    the optimizer takes; unset ones keep Keras's defaults)."""
    given = {name: getattr(training, name) for name in takes(training.optimizer)}
    kwargs = {name: value for name, value in given.items() if value is not None}
    return optimizer_classes()[training.optimizer](learning_rate=learning_rate(training), **kwargs)


def compile_model(model: Any, training: TrainingSpec) -> None:
    """Compile with objects only (see the module doc)."""
    optimizer = optimizer_for(training)
    loss, metrics = loss_and_metrics(training)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=metrics,
        jit_compile="auto" if training.jit_compile is None else training.jit_compile,
    )


def labels_for(y: np.ndarray, training: TrainingSpec, num_classes: int) -> np.ndarray:
    """Integer labels as the loss wants them (one-hot for categorical_crossentropy)."""
    if training.loss == "sparse_categorical_crossentropy":
        return y
    onehot: np.ndarray = np.eye(num_classes, dtype=np.float32)[y]
    return onehot


def scores_from(
    model: Any, training: TrainingSpec, num_classes: int, y: np.ndarray, probs: np.ndarray
) -> dict[str, float]:
    """What ``model.evaluate`` returns, from the test probabilities: the compiled loss (a mean
    over examples, as evaluate's batch means weighted by batch size are) plus the layers'
    regularization losses, and each compiled metric (objects made as for ``compile_model``).
    The same numbers up to float32 rounding (tests/unit/worker/test_worker_analysis.py)."""
    import keras

    labels = labels_for(y, training, num_classes)
    loss_fn, metrics = loss_and_metrics(training)
    loss = float(keras.ops.convert_to_numpy(loss_fn(labels, probs)))
    loss += sum(float(keras.ops.convert_to_numpy(x)) for x in model.losses)
    out = {"loss": loss}
    for name, metric in zip(training.metrics, metrics, strict=True):
        metric.update_state(labels, probs)
        out[name] = float(keras.ops.convert_to_numpy(metric.result()))
    return out
