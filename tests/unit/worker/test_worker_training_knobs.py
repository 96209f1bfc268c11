"""The worker builds what the training knobs say: the optimizer's arguments, each learning-rate
schedule (its rates recomputed here from the formulas Keras documents) and the smoothed loss
(recomputed with NumPy); and a fit follows the schedule step by step."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from core.spec import TrainingSpec
from worker.keras_objects import compile_model, loss_and_metrics, optimizer_for


def test_the_optimizer_gets_the_arguments_the_spec_sets() -> None:
    sgd = optimizer_for(
        TrainingSpec(optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True, clipnorm=1.0)
    )
    assert type(sgd).__name__ == "SGD"
    assert (sgd.momentum, sgd.nesterov, sgd.clipnorm) == (0.9, True, 1.0)
    assert math.isclose(float(sgd.learning_rate), 0.05, rel_tol=1e-6)
    adam = optimizer_for(TrainingSpec(beta_1=0.8, beta_2=0.99, epsilon=1e-5, weight_decay=1e-3))
    assert (adam.beta_1, adam.beta_2, adam.epsilon, adam.weight_decay) == (0.8, 0.99, 1e-5, 1e-3)
    # Unset: Keras's own defaults (AdamW's weight decay is 0.004).
    plain = optimizer_for(TrainingSpec(optimizer="adamw"))
    assert (plain.beta_1, plain.weight_decay, plain.clipvalue) == (0.9, 0.004, None)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (
            {"schedule": "cosine", "initial_learning_rate": 0.1, "decay_steps": 100, "alpha": 0.1},
            lambda s: 0.1 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * min(s, 100) / 100)) + 0.1),
        ),
        (
            {
                "schedule": "warmup_cosine",
                "initial_learning_rate": 0.0,
                "decay_steps": 100,
                "warmup_target": 0.2,
                "warmup_steps": 10,
            },
            lambda s: (
                0.2 * s / 10
                if s < 10
                else 0.2 * 0.5 * (1 + math.cos(math.pi * min(s - 10, 100) / 100))
            ),
        ),
        (
            {
                "schedule": "exponential",
                "initial_learning_rate": 0.1,
                "decay_steps": 10,
                "decay_rate": 0.5,
                "staircase": True,
            },
            lambda s: 0.1 * 0.5 ** (s // 10),
        ),
        (
            {"schedule": "piecewise", "boundaries": [5, 20], "values": [0.3, 0.2, 0.1]},
            lambda s: 0.3 if s <= 5 else (0.2 if s <= 20 else 0.1),
        ),
    ],
)
def test_each_schedule_gives_the_documented_rates(rate: dict[str, Any], expected: Any) -> None:
    if rate["schedule"] == "warmup_cosine":
        rate = {**rate, "initial_learning_rate": 1e-9}  # the spec wants a positive start
    optimizer = optimizer_for(TrainingSpec(optimizer="sgd", learning_rate=rate))
    schedule = optimizer._learning_rate
    for step in (0, 1, 5, 6, 9, 10, 15, 20, 21, 50, 99, 100, 150):
        got = float(schedule(step))
        assert math.isclose(got, expected(step), rel_tol=1e-5, abs_tol=1e-7), (step, got)


def test_label_smoothing_smooths_the_categorical_loss() -> None:
    loss, _ = loss_and_metrics(TrainingSpec(loss="categorical_crossentropy", label_smoothing=0.2))
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=8).astype(np.float32)
    onehot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=8)]
    smooth = onehot * 0.8 + 0.2 / 4
    expected = float(np.mean(-np.sum(smooth * np.log(probs), axis=1)))
    assert math.isclose(float(loss(onehot, probs)), expected, rel_tol=1e-5)
    unsmoothed, _ = loss_and_metrics(TrainingSpec(loss="categorical_crossentropy"))
    assert not math.isclose(float(unsmoothed(onehot, probs)), expected, rel_tol=1e-3)


@pytest.mark.training
def test_a_fit_follows_the_schedule() -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    rate = {"schedule": "piecewise", "boundaries": [3], "values": [0.5, 0.0001]}
    compile_model(model, TrainingSpec(optimizer="sgd", learning_rate=rate))
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    seen: list[float] = []

    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(model.optimizer.learning_rate))
    )
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    # Five steps: the rate at steps 0..3 is 0.5, then 0.0001 (PiecewiseConstantDecay's "<=").
    assert [round(r, 6) for r in seen] == [0.5, 0.5, 0.5, 0.5, 0.0001]
