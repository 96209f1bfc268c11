"""worker.training: what a trial's seed fixes (the paired design), and a loss that becomes NaN
or infinite stops the trial, which is evaluated as it is and says "diverged" (a divergence
belongs to the architecture; it is not dropped)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.seeding import init_seed
from core.spec import TrainingSpec
from models.spec import parse_variant
from worker.datasets import Split, load_dataset, make_split
from worker.training import FunctionHooks, ModelConfig, ResumeConfig, TrialConfig, train_trial

# Linear hidden layers under SGD at learning rate 10: the weights overflow within one epoch.
pytestmark = pytest.mark.training  # fits Keras models in this process

_UNSTABLE = parse_variant(
    {
        "name": "unstable",
        "layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32, "activation": "linear"},
            {"type": "Dense", "units": 32, "activation": "linear"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
).layers
assert _UNSTABLE is not None
UNSTABLE = _UNSTABLE
TRAINING = TrainingSpec(epochs=3, batch_size=16, optimizer="sgd", learning_rate=10.0)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    return make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=300)


def test_a_diverging_loss_stops_and_is_evaluated_as_it_is(split: Split, tmp_path: Path) -> None:
    seen: list[int] = []
    config = TrialConfig(
        ModelConfig(UNSTABLE, (8, 8, 1)),
        split,
        TRAINING,
        seed=0,
        resume=ResumeConfig(checkpoint_dir=tmp_path),
        warm_models=0,
    )
    r = train_trial(config, FunctionHooks(on_epoch=lambda epoch, _: seen.append(epoch)))
    assert r.stop_reason == "diverged"
    assert not math.isfinite(r.epochs[-1]["loss"])
    assert len(r.epochs) < TRAINING.epochs  # it stopped at the epoch whose loss went bad
    assert seen == [int(e["epoch"]) for e in r.epochs]
    # Evaluated as it is: the scores are what the broken model gets, not left out.
    assert r.test_metrics
    assert r.test_loss is not None
    assert not math.isfinite(r.test_loss)
    assert r.test_accuracy is not None
    assert 0.0 <= r.test_accuracy <= 1.0
    # Recomputed: a model whose outputs are NaN predicts class 0 (argmax of NaN) everywhere.
    assert r.test_accuracy == pytest.approx(float(np.mean(split.y_test == 0)))
    # An attempt that resumes from the final checkpoint evaluates only, and says so too.
    again = train_trial(config)
    assert again.epochs == []
    assert again.stop_reason == "diverged"


def test_the_data_order_follows_the_seed_not_the_architecture(split: Split) -> None:
    """At seed s every variant sees the same shuffles, however many random numbers building
    it drew. Two variants whose Dense layers start from the same weights, one with a trailing
    Dropout whose build draws a seed but which never drops (rate 1e-9): the same losses, so
    the same batches in the same order. Another seed gives other losses."""
    base = [
        {"type": "Flatten"},
        {"type": "Dense", "units": 16, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    plain = parse_variant({"name": "plain", "layers": base}).layers
    extra = parse_variant(
        {"name": "extra", "layers": [*base, {"type": "Dropout", "rate": 1e-9}]}
    ).layers
    assert plain is not None
    assert extra is not None
    training = TrainingSpec(epochs=2, batch_size=16)

    def losses(layers: Any, seed: int) -> list[float]:
        r = train_trial(
            TrialConfig(ModelConfig(layers, (8, 8, 1)), split, training, seed, warm_models=0)
        )
        return [e["loss"] for e in r.epochs]

    first = losses(plain, 1)
    assert losses(extra, 1) == pytest.approx(first, rel=1e-5)
    assert losses(plain, 2) != pytest.approx(first, rel=1e-5)


def test_a_replicates_initialisation_seed_moves_the_weights_not_the_data_order(
    split: Split,
) -> None:
    """``init_seed`` (core.seeding) draws the initial weights; the data seed keeps the order.
    The same pair of seeds gives the same run; another init seed at the same data seed gives
    other losses (other weights); the same init seed under another data seed too (only the
    order differs there, so the order follows the data seed, not the init seed)."""
    layers = parse_variant(
        {
            "name": "mlp",
            "layers": [
                {"type": "Flatten"},
                {"type": "Dense", "units": 16, "activation": "relu"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ],
        }
    ).layers
    assert layers is not None
    training = TrainingSpec(epochs=1, batch_size=16)

    def losses(seed: int, init: int | None) -> list[float]:
        config = TrialConfig(
            ModelConfig(layers, (8, 8, 1)), split, training, seed, warm_models=0, init_seed=init
        )
        assert config.initialisation_seed == (seed if init is None else init)
        return [e["loss"] for e in train_trial(config).epochs]

    replicate = init_seed(1, 1)
    first = losses(1, replicate)
    assert losses(1, replicate) == pytest.approx(first, rel=1e-6)
    assert losses(1, None) != pytest.approx(first, rel=1e-5)
    assert losses(replicate, replicate) != pytest.approx(first, rel=1e-5)
