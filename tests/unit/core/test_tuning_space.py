"""The tuning block's checks: each problem located at the knob, the budget or the epochs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import ErrorItem
from core.tuning_space import TuningSpec, grid_size, tuning_errors


def _errors(
    space: dict[str, Any], optimizer: str = "adam", training_epochs: int = 5, **kw: Any
) -> list[ErrorItem]:
    spec = TuningSpec.model_validate({"space": space, **kw})
    return tuning_errors(
        spec, training_epochs=training_epochs, optimizer=optimizer, dropout_layers={"drop1"}
    )


def test_a_good_space_has_no_error() -> None:
    space = {
        "learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "weight_decay": {"uniform": [0.0, 0.01]},
        "batch_size": {"choice": [32, 64]},
        "dropout.drop1": {"uniform": [0.0, 0.5]},
    }
    assert _errors(space) == []


@pytest.mark.parametrize(
    ("space", "loc", "words"),
    [
        ({"lr": {"uniform": [0.1, 0.2]}}, "lr", "unknown knob"),
        ({"learning_rate": {"uniform": [0.0, 0.1]}}, "learning_rate", "must lie in (0"),
        ({"batch_size": {"choice": [32, 64.5]}}, "batch_size", "integers"),
        ({"batch_size": {"uniform": [16, 64]}}, "batch_size", "choice"),
        ({"momentum": {"uniform": [0.0, 0.9]}}, "momentum", "has no momentum"),
        ({"dropout.nope": {"uniform": [0.0, 0.5]}}, "dropout.nope", "no variant has a Dropout"),
        ({"dropout.drop1": {"uniform": [0.2, 1.0]}}, "dropout.drop1", "[0, 1)"),
    ],
)
def test_each_bad_knob_is_located(space: dict[str, Any], loc: str, words: str) -> None:
    (error,) = _errors(space)
    assert error["loc"] == ["tuning", "space", loc]
    assert words in error["msg"]


def test_momentum_is_fine_for_sgd() -> None:
    assert _errors({"momentum": {"uniform": [0.0, 0.9]}}, optimizer="sgd") == []


def test_grid_needs_choices_and_enough_points() -> None:
    ranged = _errors({"learning_rate": {"uniform": [0.001, 0.1]}}, sampler="grid")
    assert ranged[0]["loc"] == ["tuning", "space", "learning_rate"]
    assert "grid sampler needs every knob as a choice" in ranged[0]["msg"]
    small = _errors({"batch_size": {"choice": [32, 64]}}, sampler="grid", trials=3)
    assert small == [
        {
            "loc": ["tuning", "trials"],
            "msg": "3 trials but the grid has only 2 configurations: lower trials or widen "
            "the grid",
        }
    ]
    spec = TuningSpec.model_validate(
        {"space": {"batch_size": {"choice": [1, 2]}, "momentum": {"choice": [0, 0.5, 0.9]}}}
    )
    assert grid_size(spec) == 6


def test_tuning_epochs_must_be_fewer_than_trainings() -> None:
    space = {"learning_rate": {"log_uniform": [1e-4, 1e-1]}}
    assert _errors(space, training_epochs=5, epochs=5)[0]["loc"] == ["tuning", "epochs"]
    assert _errors(space, training_epochs=5, epochs=6)[0]["loc"] == ["tuning", "epochs"]
    assert _errors(space, training_epochs=5, epochs=2) == []
    assert _errors(space, training_epochs=1, epochs=1) == []


@pytest.mark.parametrize(
    "entry",
    [
        {"log_uniform": [0.0, 0.1]},
        {"log_uniform": [0.1, 0.01]},
        {"uniform": [1.0, 1.0]},
        {"choice": []},
        {"choice": [1, 1]},
        {"uniform": [0, 1], "choice": [1]},
    ],
)
def test_malformed_entries_are_refused_by_the_model(entry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TuningSpec.model_validate({"space": {"learning_rate": entry}})
