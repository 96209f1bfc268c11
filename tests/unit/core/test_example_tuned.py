"""``examples/tuned.json`` is a valid comparison with a valid tuning block whose space holds
the comparison's own settings (so tuning can only find settings at least as good on the
validation split), and it shows what the README says: at the comparison's own settings
(plain SGD at 0.01) the deep stack loses clearly, and at a point of the space it ties or
wins."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import Settings
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison
from core.tuning_space import LogUniform, TuningSpec, Uniform, tuning_errors

EXAMPLE: dict[str, Any] = json.loads(
    (Path(__file__).parents[3] / "examples" / "tuned.json").read_text()
)
SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")


def test_the_comparison_validates() -> None:
    done = validate_comparison(ComparisonSpec.model_validate(EXAMPLE), SETTINGS)
    assert done.spec.variant_names == ["shallow", "deep"]
    assert done.spec.tuning is not None
    # Every variant's tuning trials and then its tested trials at three seeds.
    assert done.trials_total == 2 * EXAMPLE["tuning"]["trials"] + 2 * 3


def test_the_tuning_block_validates_against_the_comparison() -> None:
    spec = TuningSpec.model_validate(EXAMPLE["tuning"])
    training = EXAMPLE["training"]
    errors = tuning_errors(
        spec,
        training_epochs=training["epochs"],
        optimizer=training["optimizer"],
        dropout_layers=set(),
    )
    assert errors == []
    assert spec.epochs is not None
    assert spec.epochs < training["epochs"]


def test_the_space_holds_the_default_settings() -> None:
    spec = TuningSpec.model_validate(EXAMPLE["tuning"])
    lr = spec.space["learning_rate"]
    momentum = spec.space["momentum"]
    assert isinstance(lr, LogUniform)
    assert isinstance(momentum, Uniform)
    low, high = lr.bounds
    assert low < EXAMPLE["training"]["learning_rate"] < high
    assert math.log(high / low) > 2 * math.log(10)  # more than two decades
    assert momentum.bounds[0] == 0.0  # Keras's SGD default, the untuned setting


def _test_accuracy(name: str, learning_rate: float, momentum: float, seed: int) -> float:
    """One fit of the example's variant on its data (mnist_5k, 72/8/20 split by seed)."""
    import keras

    from models import build_model, parse_variant
    from worker.datasets import load_dataset

    raw = next(v for v in EXAMPLE["variants"] if v["name"] == name)
    ds = load_dataset("mnist_5k", cache_dir=Path("/tmp/archbench-unused"))
    order = np.random.default_rng(seed).permutation(len(ds.y))
    x, y = ds.x[order], ds.y[order]
    n_test = len(y) // 5
    keras.utils.set_random_seed(seed)
    model = build_model(parse_variant(raw).layers or [], (28, 28, 1))
    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=momentum),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x[n_test:], y[n_test:], epochs=3, batch_size=64, verbose=0)
    return float(model.evaluate(x[:n_test], y[:n_test], verbose=0)[1])


@pytest.mark.training
@pytest.mark.slow
def test_the_deep_stack_loses_at_the_default_and_ties_once_tuned() -> None:
    default = {n: _test_accuracy(n, 0.01, 0.0, seed=0) for n in ("shallow", "deep")}
    assert default["deep"] < default["shallow"] - 0.15
    tuned = {n: _test_accuracy(n, 0.05, 0.9, seed=0) for n in ("shallow", "deep")}
    assert tuned["deep"] > tuned["shallow"] - 0.02
    assert tuned["deep"] > default["deep"] + 0.3
