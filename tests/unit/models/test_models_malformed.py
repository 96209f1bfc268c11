"""A corpus of malformed variants: each must fail with an exact location and a clear message."""

from __future__ import annotations

from typing import Any

import pytest

from models import Limits, SpecError, analyze_variant, layers_from_keras_config, parse_variant
from tests.support import kjson
from tests.support.malformed import ANALYSIS_CASES, CASES, D10, KL, C, F, keras, variant


@pytest.mark.parametrize(
    ("data", "loc", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_rejects(data: dict[str, Any], loc: list[Any], fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_variant(data)
    assert loc in [e["loc"] for e in info.value.errors], info.value.errors
    assert any(e["loc"] == loc and fragment in e["msg"] for e in info.value.errors), (
        info.value.errors
    )


@pytest.mark.parametrize(
    ("data", "shape", "limits", "loc", "fragment"),
    [c[1:] for c in ANALYSIS_CASES],
    ids=[c[0] for c in ANALYSIS_CASES],
)
def test_analysis_rejects(
    data: dict[str, Any], shape: Any, limits: Limits | None, loc: list[Any], fragment: str
) -> None:
    v = parse_variant(data)
    with pytest.raises(SpecError) as info:
        analyze_variant(v, input_shape=shape, num_classes=10, limits=limits)
    assert any(e["loc"] == loc and fragment in e["msg"] for e in info.value.errors), (
        info.value.errors
    )


def test_variant_input_shape_wins() -> None:
    v = parse_variant(variant(F, D10, input_shape=[8, 8, 1]))
    _, shape, analysis = analyze_variant(v, input_shape=(28, 28, 1), num_classes=10)
    assert shape == (8, 8, 1)
    assert analysis.params == 64 * 10 + 10


def test_keras_config_shape_used_without_dataset() -> None:
    v = parse_variant({"name": "k", "keras_config": kjson.model_a()})
    layers, shape, analysis = analyze_variant(v, input_shape=None, num_classes=10)
    assert shape == (28, 28, 1)
    assert analysis.params == 866_570
    assert [layer.type for layer in layers] == ["Conv2D", "Flatten", "Dense"]


def test_get_config_form_and_error_locations() -> None:
    conf = kjson.model_a()["config"]
    conf["layers"][1]["config"]["padding"] = "weird"
    with pytest.raises(SpecError) as info:
        parse_variant({"name": "k", "keras_config": conf})
    assert info.value.errors[0]["loc"] == ["keras_config", "layers", 1, "config", "padding"]


def test_all_errors_reported_together() -> None:
    bad = variant(C | {"filters": 0, "activation": "nope"}, {"type": "Nope"})
    with pytest.raises(SpecError) as info:
        parse_variant(bad)
    locs = [e["loc"] for e in info.value.errors]
    assert ["layers", 0, "filters"] in locs
    assert ["layers", 0, "activation"] in locs
    assert ["layers", 1, "type"] in locs


@pytest.mark.parametrize(
    ("bad", "loc", "fragment"),
    [
        (
            {"kernel_initializer": kjson.init("VarianceScaling")},
            ["kernel_initializer"],
            "unsupported initializer 'VarianceScaling'",
        ),
        (
            {"bias_initializer": kjson.init("Zeros") | {"module": "evil"}},
            ["bias_initializer", "module"],
            "not Keras's own",
        ),
        (
            {"kernel_initializer": kjson.init("HeNormal", seed=3)},
            ["kernel_initializer", "config", "seed"],
            "seeds come from the trial",
        ),
        ({"activation": {"class_name": "MyAct"}}, ["activation"], "given by name"),
        (
            {"kernel_regularizer": {"class_name": "OrthogonalRegularizer"}},
            ["kernel_regularizer"],
            "unsupported regularizer",
        ),
    ],
    ids=["initializer", "initializer module", "initializer seed", "activation", "regularizer"],
)
def test_keras_config_reports_one_clear_error(
    bad: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    """A refused value is reported once, not again as a confusing pydantic error."""
    with pytest.raises(SpecError) as info:
        parse_variant(keras(kjson.dense(**bad)))
    assert len(info.value.errors) == 1, info.value.errors
    assert info.value.errors[0]["loc"] == [*KL, 1, "config", *loc]
    assert fragment in info.value.errors[0]["msg"]


def test_keras_config_other_errors_of_the_layer_still_reported() -> None:
    bad = kjson.dense(units=0, kernel_initializer=kjson.init("VarianceScaling"))
    with pytest.raises(SpecError) as info:
        parse_variant(keras(bad))
    locs = [e["loc"] for e in info.value.errors]
    assert locs == [[*KL, 1, "config", "kernel_initializer"], [*KL, 1, "config", "units"]]


def test_keras_config_layer_count_capped_like_native_layers() -> None:
    from models.spec import MAX_LAYERS

    many = [kjson.layer("Flatten")] * MAX_LAYERS
    layers, _ = layers_from_keras_config(kjson.sequential(*many))
    assert len(layers) == MAX_LAYERS
    with pytest.raises(SpecError) as info:
        parse_variant(variant(*[F] * (MAX_LAYERS + 1)))
    assert info.value.errors[0]["loc"] == ["layers"]
    with pytest.raises(SpecError) as info:
        layers_from_keras_config(kjson.sequential(*many, kjson.layer("Flatten")))
    assert info.value.errors == [
        {
            "loc": ["keras_config", "config", "layers"],
            "msg": f"{MAX_LAYERS + 1:,} layers exceeds the maximum of {MAX_LAYERS:,}",
        }
    ]
