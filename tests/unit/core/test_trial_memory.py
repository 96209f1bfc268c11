"""The submit counts what a trial needs in a worker (core.trials.admission, models.memory):
the training step at its calibrated multiple of the layer outputs, and the analysis' probe
pass, which holds two layers' outputs over the whole probe set. Each figure is recomputed here
from the shapes by hand."""

from __future__ import annotations

from typing import Any

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison
from models.memory import PROBE_FACTOR, RUNTIME_BYTES, TRAINING_FACTOR

MIB = 1024 * 1024


def _conv(filters: int) -> dict[str, Any]:
    return {
        "type": "Conv2D",
        "filters": filters,
        "kernel_size": [3, 3],
        "padding": "same",
        "activation": "relu",
    }


def _spec(filters: int, *, batch: int, analysis: dict[str, Any] | None = None) -> ComparisonSpec:
    layers = [
        _conv(filters),
        _conv(filters),
        {"type": "GlobalAveragePooling2D"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    body: dict[str, Any] = {
        "name": "memory",
        "dataset": {"name": "mnist", "test_split": 0.2},
        "training": {"batch_size": batch},
        "variants": [{"name": "wide", "layers": layers}],
        "seeds": [0],
        "analysis": analysis or {"similarity": False},
    }
    return ComparisonSpec.model_validate(body)


def _settings(**kw: Any) -> Settings:
    return Settings(database_url="sqlite://", **kw)


def _refused(spec: ComparisonSpec, settings: Settings) -> dict[str, Any]:
    with pytest.raises(InvalidInput) as caught:
        validate_comparison(spec, settings)
    [error] = caught.value.errors
    return dict(error)


def test_a_probe_pass_over_the_limit_is_refused_though_its_batch_is_small() -> None:
    # Two 28 x 28 x 320 float32 outputs: 1,003,520 bytes each per example. A batch of 64
    # holds 128 MB of layer outputs (1.6% of ARCHBENCH_MAX_ACTIVATION_BYTES), but the probe
    # pass holds both layers' outputs over 3,000 probe examples at once.
    out = 28 * 28 * 320 * 4
    alive = 2 * out  # the two conv outputs (the input is dropped once the first has read it)
    probe = 3000
    need = PROBE_FACTOR * (probe * alive + probe * probe * 8)
    assert need > 8 * 1024 * MIB
    error = _refused(_spec(320, batch=64, analysis={"probe_size": probe}), _settings())
    assert error["loc"] == ["body", "analysis", "probe_size"]
    assert f"probe pass {need / MIB:,.0f} MiB" in error["msg"]
    assert "Lower analysis.probe_size" in error["msg"]
    # The same model with the default probe (256) fits.
    validate_comparison(_spec(320, batch=64, analysis={"probe_size": 256}), _settings())


def test_a_training_step_is_counted_at_its_measured_multiple_of_the_layer_outputs() -> None:
    # 2 x 28 x 28 x 512 float32 per example (plus the tiny GAP and Dense outputs), batch 2,048:
    # 6.6 GB of layer outputs, under the 8 GB activation limit, but a training step holds about
    # TRAINING_FACTOR times that.
    per_example = 2 * 28 * 28 * 512 * 4 + 512 * 4 + 10 * 4
    outputs = per_example * 2048
    assert outputs < 8_000_000_000
    error = _refused(_spec(512, batch=2048), _settings())
    assert error["loc"] == ["body", "variants", 0, "layers", 0]  # the first largest output
    assert f"training step {TRAINING_FACTOR * outputs / MIB:,.0f} MiB" in error["msg"]
    assert "The largest part is the training step" in error["msg"]
    assert "ARCHBENCH_MAX_TRIAL_MEMORY_MB" in error["msg"]
    # Allowed more memory, or with a smaller batch, it is admitted.
    validate_comparison(_spec(512, batch=2048), _settings(max_trial_memory_mb=20_000))
    validate_comparison(_spec(512, batch=128), _settings())


def test_a_limit_under_the_runtime_refuses_any_model() -> None:
    small = _spec(8, batch=32)
    validate_comparison(small, _settings())
    error = _refused(small, _settings(max_trial_memory_mb=RUNTIME_BYTES // MIB - 1))
    assert f"limit of {RUNTIME_BYTES // MIB - 1:,} MiB" in error["msg"]
