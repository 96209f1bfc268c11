"""The analysis' submit-time limits: located errors before anything is stored or queued."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.report.similarity import analysis_bytes
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison

CONV: dict[str, Any] = {
    "name": "conv",
    "layers": [
        {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "activation": "relu"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ],
}


def _spec(**analysis: Any) -> ComparisonSpec:
    body: dict[str, Any] = {
        "name": "t",
        "dataset": {"name": "digits", "max_samples": 500, "test_split": 0.2},
        "variants": [CONV],
        "seeds": [0, 1],
    }
    if analysis:
        body["analysis"] = analysis
    return ComparisonSpec.model_validate(body)


def _settings(**kw: Any) -> Settings:
    return Settings(database_url="sqlite://", **kw)


def test_default_probe_is_capped_at_the_test_set() -> None:
    v = validate_comparison(_spec(), _settings())
    assert v.spec.dump()["analysis"] == {"predictions": True, "similarity": True, "probe_size": 100}


def test_an_explicit_probe_larger_than_the_test_set_is_located() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_comparison(_spec(probe_size=101), _settings())
    [error] = exc.value.errors
    assert error["loc"] == ["body", "analysis", "probe_size"]
    assert "100" in error["msg"]
    # Without similarity there is no probe to refuse.
    validate_comparison(_spec(probe_size=101, similarity=False), _settings())


def test_storage_over_the_limit_is_located() -> None:
    # digits: 100 test examples x (16 + 2 x 10) bytes, plus 2 analysed layers (Conv2D, Dense)
    # of a 100-example Gram (100 x 101 bytes each).
    need = analysis_bytes(
        n_test=100, num_classes=10, layers=CONV["layers"], predictions=True, probe_size=100
    )
    assert need == 100 * 36 + 2 * 100 * 101
    validate_comparison(_spec(), _settings(analysis_max_bytes_per_trial=need))
    with pytest.raises(InvalidInput) as exc:
        validate_comparison(_spec(), _settings(analysis_max_bytes_per_trial=need - 1))
    [error] = exc.value.errors
    assert error["loc"] == ["body", "analysis"]
    assert f"{need:,} bytes" in error["msg"]
    # Turning the Grams off brings it under.
    validate_comparison(_spec(similarity=False), _settings(analysis_max_bytes_per_trial=need - 1))


def test_unknown_analysis_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        _spec(probes=3)
