"""Activation memory: parameter and FLOP counts miss it."""

from __future__ import annotations

import math

import pytest

from models.analysis import Limits, analyze
from models.errors import SpecError
from models.spec import LayerSpec, parse_variant

PADDINGS = 190


def padding_bomb() -> list[dict[str, object]]:
    return [
        {"type": "Reshape", "target_shape": [8, 8, 1]},
        *[{"type": "ZeroPadding2D", "padding": 64}] * PADDINGS,
        {"type": "GlobalAveragePooling2D"},
        {"type": "Dense", "units": 10},
    ]


def _layers() -> list[LayerSpec]:
    return list(parse_variant({"name": "bomb", "layers": padding_bomb()}).layers or [])


def test_the_padding_bomb_has_few_params_but_huge_activations() -> None:
    analysis = analyze(_layers(), (64,), num_classes=10, batch_size=64)
    assert analysis.params == 20
    side = 8 + 128 * PADDINGS
    assert side == 24_328
    act = analysis.activations
    assert act is not None
    # Recomputed from the shapes: every layer's float32 output.
    per_sample = [64 * 4] + [(8 + 128 * k) ** 2 * 4 for k in range(1, PADDINGS + 1)] + [4, 40]
    assert act.largest_bytes_per_sample == side * side * 4 == max(per_sample)
    assert act.largest_layer_index == PADDINGS
    assert act.total_bytes_per_sample == sum(per_sample)
    assert act.largest_bytes_per_batch == 64 * side * side * 4
    assert act.total_bytes_per_batch == 64 * sum(per_sample)
    assert act.largest_bytes_per_batch > 150e9  # about 152 GB, as the issue says
    as_json = analysis.to_dict()["activations"]
    assert as_json["total_bytes_per_batch"] == act.total_bytes_per_batch


def test_the_limit_refuses_it_at_the_largest_layer() -> None:
    limits = Limits(500, 10**9, 10**12, max_activation_bytes=8_000_000_000)
    with pytest.raises(SpecError) as caught:
        analyze(_layers(), (64,), num_classes=10, limits=limits, batch_size=64)
    (error,) = caught.value.errors
    assert error["loc"] == ["layers", PADDINGS]
    assert "ARCHBENCH_MAX_ACTIVATION_BYTES" in error["msg"]
    assert "24328" in error["msg"]


def test_a_small_model_stays_under_the_default_limit() -> None:
    layers = parse_variant(
        {"name": "m", "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]}
    ).layers
    limits = Limits(500, 10**9, 10**12, max_activation_bytes=8_000_000_000)
    analysis = analyze(
        list(layers or []), (28, 28, 1), num_classes=10, limits=limits, batch_size=32
    )
    assert analysis.activations is not None
    assert analysis.activations.total_bytes_per_sample == (math.prod((784,)) + 10) * 4
