"""A variant name is a directory in exports (TensorBoard runs): "." and ".." (dots alone) are
refused at submit with a located error, not silently skipped at export."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison


def _spec(name: str) -> ComparisonSpec:
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": 10}]
    return ComparisonSpec.model_validate(
        {
            "name": "names",
            "dataset": {"name": "digits"},
            "seeds": [0],
            "training": {"epochs": 1},
            "variants": [{"name": "base", "layers": layers}, {"name": name, "layers": layers}],
        }
    )


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_dots_alone_are_refused_with_their_location(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_comparison(_spec(name), Settings())
    (error,) = refused.value.errors
    assert error["loc"] == ["body", "variants", 1, "name"]
    assert "only dots" in error["msg"]


@pytest.mark.parametrize("name", [".a", "a.", "v1.2", "a..b", "-", "_"])
def test_names_with_dots_and_more_pass(name: str) -> None:
    validate_comparison(_spec(name), Settings())
