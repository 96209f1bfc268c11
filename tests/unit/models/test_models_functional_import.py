"""A Keras Functional model's to_json(): read as a graph (never by Keras), built back to the
same parameters and, with the same weights, the same outputs; what it cannot be is refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from archbench._common import keras_variant  # noqa: E402
from core.config import Settings  # noqa: E402
from core.errors import InvalidInput  # noqa: E402
from core.trials.validation import validate_variant  # noqa: E402
from models import build_model, layers_from_keras_config  # noqa: E402
from models.errors import SpecError  # noqa: E402

L = keras.layers
SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")


@pytest.fixture(autouse=True)
def _clear() -> None:
    keras.utils.clear_session(free_memory=False)


def residual_se_inception() -> Any:
    """A user's functional code: residual block, squeeze-and-excitation, Inception branches."""
    x_in = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x_in)
    y = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    s = L.GlobalAveragePooling2D(keepdims=True)(y)
    s = L.Dense(2, activation="relu")(s)
    s = L.Dense(8, activation="sigmoid")(s)
    y = L.Multiply()([y, s])
    x = L.Add()([x, y])
    a = L.Conv2D(4, 1)(x)
    b = L.Conv2D(4, 3, padding="same", dilation_rate=2)(x)
    c = L.MaxPooling2D(3, strides=1, padding="same")(x)
    x = L.Concatenate()([a, b, c])
    x = L.Average()([L.Conv2D(6, 1)(x), L.Conv2D(6, 3, padding="same")(x)])
    x = L.Flatten()(x)
    out = L.Dense(10, activation="softmax")(x)
    return keras.Model(x_in, out, name="user_graph")


def test_functional_round_trip_same_params_and_outputs() -> None:
    original = residual_se_inception()
    variant = keras_variant(original)  # what the Python client submits
    stored, analysis = validate_variant(variant, dataset=None, settings=SETTINGS, prefix=["v"])
    assert stored.source == "keras_config"
    assert stored.input_shape == (10, 10, 3)
    layers = stored.parse().layers
    assert layers is not None
    rebuilt = build_model(layers, stored.input_shape)
    assert type(rebuilt).__name__ == "Functional"
    assert rebuilt.count_params() == original.count_params() == analysis.params
    for layer in original.layers:
        if layer.weights:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    x = np.random.default_rng(0).normal(size=(5, 10, 10, 3)).astype("float32")
    want = original.predict(x, verbose=0)
    got = rebuilt.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_get_config_reads_as_to_json() -> None:
    model = residual_se_inception()
    a = layers_from_keras_config(json.loads(model.to_json()))
    b = layers_from_keras_config(model.get_config())
    assert a == b


def test_a_functional_stack_stores_as_the_sequential_does() -> None:
    def seq() -> Any:
        return keras.Sequential(
            [keras.Input((10, 10, 3)), L.Conv2D(4, 3), L.Flatten(), L.Dense(10)], name="s"
        )

    x_in = keras.Input((10, 10, 3))
    func = keras.Model(x_in, L.Dense(10)(L.Flatten()(L.Conv2D(4, 3)(x_in))), name="s")
    a, _ = validate_variant(keras_variant(seq()), dataset=None, settings=SETTINGS, prefix=[])
    b, _ = validate_variant(keras_variant(func), dataset=None, settings=SETTINGS, prefix=[])
    assert a.layers == b.layers


def shared() -> Any:
    x_in = keras.Input((6, 6, 2))
    conv = L.Conv2D(2, 3, padding="same")
    return keras.Model(x_in, L.Flatten()(conv(conv(x_in))))


def nested() -> Any:
    inner = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(2, 3)], name="inner")
    x_in = keras.Input((6, 6, 2))
    return keras.Model(x_in, L.Flatten()(inner(x_in)))


def two_inputs() -> Any:
    a, b = keras.Input((4,)), keras.Input((4,))
    return keras.Model([a, b], L.Add()([a, b]))


def two_outputs() -> Any:
    a = keras.Input((4,))
    return keras.Model(a, [L.Dense(2)(a), L.Dense(3)(a)])


def lambda_layer() -> Any:
    a = keras.Input((4,))
    return keras.Model(a, L.Lambda(lambda t: t * 2)(a))


REFUSED: dict[str, tuple[Any, list[Any], str]] = {
    "shared layer": (shared, ["layers", 1, "inbound_nodes"], "applied 2 times (shared weights)"),
    "nested model": (nested, ["layers", 1, "class_name"], "a nested model"),
    "two inputs": (two_inputs, ["input_layers"], "2 inputs is not supported"),
    "two outputs": (two_outputs, ["output_layers"], "2 outputs is not supported"),
    "lambda": (lambda_layer, ["layers", 1, "class_name"], "Lambda layers run arbitrary code"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_a_graph_cannot_be_is_a_located_refusal(case: str) -> None:
    make, loc, fragment = REFUSED[case]
    conf = json.loads(make().to_json())
    with pytest.raises(SpecError) as info:
        layers_from_keras_config(conf)
    want = ["keras_config", "config", *loc]
    assert any(e["loc"] == want and fragment in e["msg"] for e in info.value.errors), (
        info.value.errors
    )
    with pytest.raises(InvalidInput):
        validate_variant(
            {"name": "x", "keras_config": conf}, dataset=None, settings=SETTINGS, prefix=[]
        )


def test_a_frozen_functional_model_is_refused() -> None:
    x_in = keras.Input((4,))
    model = keras.Model(x_in, L.Dense(10)(x_in))
    model.trainable = False
    with pytest.raises(SpecError) as info:
        layers_from_keras_config(json.loads(model.to_json()))
    assert [e["loc"] for e in info.value.errors] == [["keras_config", "config", "trainable"]]
