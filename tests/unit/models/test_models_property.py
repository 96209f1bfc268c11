"""Property: when the analysis accepts a random spec, Keras builds it with equal counts, shapes."""
# ruff: noqa: E501 - the case tables read best one case per line

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

from models import SpecError, analyze, build_model, layers_from_keras_config  # noqa: E402
from models.spec import Variant  # noqa: E402

small = st.integers(1, 4)
pair = st.one_of(small, st.lists(small, min_size=2, max_size=2))
pad = st.sampled_from(["valid", "same"])
act = st.sampled_from(["relu", "linear", "softmax", "gelu", "swish", "tanh"])
conv = {"strides": st.integers(1, 2), "padding": pad, "activation": act, "use_bias": st.booleans()}


def layer(kind: str, **args: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": st.just(kind), **args})


LAYERS = st.one_of(
    layer("Conv2D", filters=st.integers(1, 8), kernel_size=pair, **conv),
    layer("Conv2D", filters=st.integers(1, 8), kernel_size=pair, dilation_rate=st.integers(1, 2)),
    layer("SeparableConv2D", filters=st.integers(1, 8), kernel_size=pair, depth_multiplier=small, **conv),
    layer("DepthwiseConv2D", kernel_size=pair, depth_multiplier=small, **conv),
    layer("Conv1D", filters=st.integers(1, 8), kernel_size=small, strides=st.integers(1, 2),
          padding=st.sampled_from(["valid", "same", "causal"])),
    layer("MaxPooling2D", pool_size=pair, padding=pad),
    layer("AveragePooling2D", pool_size=pair, strides=st.integers(1, 3), padding=pad),
    layer("MaxPooling1D", pool_size=small, padding=pad),
    layer("AveragePooling1D", pool_size=small),
    layer("GlobalAveragePooling2D", keepdims=st.booleans()),
    layer("GlobalMaxPooling2D"),
    layer("GlobalAveragePooling1D"),
    layer("GlobalMaxPooling1D", keepdims=st.booleans()),
    layer("Flatten"),
    layer("Dense", units=st.integers(1, 12), activation=act, use_bias=st.booleans()),
    layer("Dropout", rate=st.floats(0, 0.9)),
    layer("SpatialDropout2D", rate=st.floats(0, 0.9)),
    layer("BatchNormalization", center=st.booleans(), scale=st.booleans()),
    layer("LayerNormalization", center=st.booleans(), scale=st.booleans()),
    layer("Activation", activation=act),
    layer("ReLU"),
    layer("LeakyReLU"),
    layer("ZeroPadding2D", padding=st.integers(0, 2)),
    layer("Rescaling", scale=st.floats(-2, 2)),
    layer("Reshape", target_shape=st.sampled_from([[-1], [-1, 2], [4, -1], [2, 2, -1]])),
)  # fmt: skip
SHAPES = st.one_of(
    st.tuples(st.integers(4, 14), st.integers(4, 14), st.integers(1, 3)),
    st.tuples(st.integers(4, 20), st.integers(1, 4)),
    st.tuples(st.integers(2, 20)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(shape=SHAPES, specs=st.lists(LAYERS, min_size=1, max_size=6))
def test_random_specs_match_keras(shape: tuple[int, ...], specs: list[dict[str, Any]]) -> None:
    try:
        variant = Variant.model_validate({"name": "p", "layers": specs})
        layers = list(variant.layers or [])
        analysis = analyze(layers, shape)
    except (SpecError, ValueError):
        assume(False)
        return
    keras.utils.clear_session()
    model = build_model(layers, shape)
    assert model.count_params() == analysis.params
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    assert trainable == analysis.trainable_params
    assert [tuple(x.output.shape[1:]) for x in model.layers] == [
        a.output_shape for a in analysis.layers
    ]
    back, back_shape = layers_from_keras_config(json.loads(model.to_json()))
    assert back == layers
    assert back_shape == shape
