"""One optimizer table (core.optimizers): the spec accepts exactly its names."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from core.optimizers import OPTIMIZERS
from core.spec import Optimizer, TrainingSpec


def test_the_spec_literal_is_the_tables_keys() -> None:
    assert list(typing.get_args(Optimizer)) == list(OPTIMIZERS)


def test_the_spec_takes_each_name_and_refuses_others() -> None:
    for name in OPTIMIZERS:
        assert TrainingSpec.model_validate({"epochs": 1, "optimizer": name}).optimizer == name
    with pytest.raises(ValidationError) as err:
        TrainingSpec.model_validate({"epochs": 1, "optimizer": "lion"})
    assert [e["loc"] for e in err.value.errors()] == [("optimizer",)]
