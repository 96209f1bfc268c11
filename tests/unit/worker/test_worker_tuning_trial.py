"""A tuning trial never evaluates the test split: real (tiny) Keras fits of two configurations
on a split and on the same split with its test set poisoned (labels shuffled, images noise)
give the same per-epoch validation scores, so the same selection, and no test score."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from core.spec import TrainingSpec
from core.status import TrialStage
from core.store.tables import Trial
from core.trials.tuned import apply_config
from core.trials.tuning import observation_of, select_config
from tests.support.helpers import native_layers
from worker.datasets import Split, load_dataset, make_split
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial

pytestmark = pytest.mark.training

LAYERS: list[dict[str, Any]] = [
    {"type": "Flatten"},
    {"type": "Dense", "units": 16, "activation": "relu"},
    {"type": "Dropout", "rate": 0.1, "name": "drop"},
    {"type": "Dense", "units": 10, "activation": "softmax"},
]
CONFIGS: list[dict[str, Any]] = [
    {"learning_rate": 0.0005, "dropout.drop": 0.4},
    {"learning_rate": 0.05},
]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    return make_split(ds, test_split=0.2, validation_split=0.2, split_seed=0, max_samples=500)


def poisoned(split: Split) -> Split:
    rng = np.random.default_rng(7)
    return replace(
        split,
        x_test=rng.normal(size=split.x_test.shape).astype(split.x_test.dtype),
        y_test=rng.permutation(split.y_test),
    )


def tune(
    split: Split, config: dict[str, Any], *, test: bool
) -> tuple[Trial, dict[int, dict[str, float]], float | None]:
    training, layers = apply_config(TrainingSpec(epochs=2, batch_size=32), LAYERS, config)
    model = ModelConfig(native_layers({"name": "dense", "layers": layers}), (8, 8, 1))
    evaluation = (
        EvaluationConfig(measure_inference=False)
        if test
        else EvaluationConfig(measure_inference=False, analyse=None, test=False)
    )
    result = train_trial(
        TrialConfig(model, split, training, seed=3, evaluation=evaluation, warm_models=0)
    )
    epochs = {int(e["epoch"]): dict(e) for e in result.epochs}
    row = Trial(status="succeeded", stage=TrialStage.TUNING, config=config)
    return row, epochs, result.test_accuracy


def test_the_test_split_is_never_evaluated_and_a_poisoned_one_changes_nothing(
    split: Split,
) -> None:
    bad = poisoned(split)
    selections = []
    for data in (split, bad):
        observations = []
        for config in CONFIGS:
            row, epochs, test_accuracy = tune(data, config, test=False)
            assert test_accuracy is None
            observations.append(observation_of(row, epochs, "val_accuracy"))
        selections.append((select_config(observations, maximize=True), observations))
    (clean_choice, clean), (poisoned_choice, dirty) = selections
    assert clean_choice == poisoned_choice
    assert [o.intermediate for o in clean] == [o.intermediate for o in dirty]
    # The poison is real: a tested trial's score sees it.
    _, _, clean_test = tune(split, CONFIGS[1], test=True)
    _, _, dirty_test = tune(bad, CONFIGS[1], test=True)
    assert clean_test is not None
    assert dirty_test is not None
    assert clean_test != dirty_test
