"""Property: when the analysis accepts a random spec, Keras builds it with equal counts, shapes.

Each argument is drawn from its whole allowed domain (every initializer, kernels and 1-D
weights apart; every activation and alias; regularizers by name and by factors; strides or
dilation; every padding form; the ReLU, LeakyReLU, Rescaling and normalization floats), and
the built model's to_json() must import back to the very same spec.
"""
# ruff: noqa: E501 - the case tables read best one case per line

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

from models import SpecError, analyze, build_model, layers_from_keras_config  # noqa: E402
from models.spec import (  # noqa: E402
    ACTIVATIONS,
    INITIALIZERS,
    VECTOR_INITIALIZERS,
    Variant,
)

small = st.integers(1, 4)
pair = st.one_of(small, st.lists(small, min_size=2, max_size=2))
single = st.one_of(small, st.lists(small, min_size=1, max_size=1))
pad = st.sampled_from(["valid", "same"])
# Every activation the spec accepts, its aliases and null (linear) included.
act = st.sampled_from([*ACTIVATIONS, "swish", "hard_swish", None])
kernel_init = st.sampled_from(INITIALIZERS)
vector_init = st.sampled_from(VECTOR_INITIALIZERS)  # 1-D weights: no orthogonal
factor = st.floats(0, 1, allow_subnormal=True)
reg = st.one_of(
    st.none(),
    st.sampled_from(["l1", "l2", "l1_l2"]),
    st.fixed_dictionaries({}, optional={"l1": factor, "l2": factor}),
)
unit = st.floats(0, 1, exclude_max=True)  # a rate
finite = st.floats(-1e6, 1e6, allow_nan=False)


pytestmark = pytest.mark.slow  # builds a few hundred random Keras models (~30 s)


def layer(kind: str, **args: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A layer whose every optional argument is drawn from its domain or left out."""
    required = {k: v for k, v in args.items() if not k.startswith("opt_")}
    optional = {k.removeprefix("opt_"): v for k, v in args.items() if k.startswith("opt_")}
    return st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional)


def stride_dilation(arg: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Strides or dilation above 1, never both (Keras refuses the pair)."""
    return st.one_of(
        st.fixed_dictionaries({}, optional={"strides": arg}),
        st.fixed_dictionaries({}, optional={"dilation_rate": arg}),
    )


CONV = {
    "opt_padding": pad, "opt_activation": act, "opt_use_bias": st.booleans(),
    "opt_bias_initializer": vector_init, "opt_bias_regularizer": reg,
}  # fmt: skip
pair3 = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=2, max_size=2))
single3 = st.one_of(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=1))


def conv(kind: str, **args: Any) -> st.SearchStrategy[dict[str, Any]]:
    rank = pair3 if kind != "Conv1D" else single3
    return st.builds(lambda a, b: a | b, layer(kind, **args), stride_dilation(rank))


LAYERS = st.one_of(
    conv("Conv2D", filters=st.integers(1, 8), kernel_size=pair, opt_kernel_initializer=kernel_init, opt_kernel_regularizer=reg, **CONV),
    conv("SeparableConv2D", filters=st.integers(1, 8), kernel_size=pair, opt_depth_multiplier=small,
         opt_depthwise_initializer=kernel_init, opt_pointwise_initializer=kernel_init,
         opt_depthwise_regularizer=reg, opt_pointwise_regularizer=reg, **CONV),
    conv("DepthwiseConv2D", kernel_size=pair, opt_depth_multiplier=small, opt_depthwise_initializer=kernel_init,
         opt_depthwise_regularizer=reg, **CONV),
    conv("Conv1D", filters=st.integers(1, 8), kernel_size=single, opt_kernel_initializer=kernel_init, opt_kernel_regularizer=reg,
         **CONV | {"opt_padding": st.sampled_from(["valid", "same", "causal"])}),
    layer("MaxPooling2D", opt_pool_size=pair, opt_strides=st.one_of(st.none(), pair3), opt_padding=pad),
    layer("AveragePooling2D", opt_pool_size=pair, opt_strides=st.one_of(st.none(), pair3), opt_padding=pad),
    layer("MaxPooling1D", opt_pool_size=single, opt_strides=st.one_of(st.none(), single3), opt_padding=pad),
    layer("AveragePooling1D", opt_pool_size=single, opt_strides=st.one_of(st.none(), single3), opt_padding=pad),
    layer("GlobalAveragePooling2D", opt_keepdims=st.booleans()),
    layer("GlobalMaxPooling2D", opt_keepdims=st.booleans()),
    layer("GlobalAveragePooling1D", opt_keepdims=st.booleans()),
    layer("GlobalMaxPooling1D", opt_keepdims=st.booleans()),
    layer("Flatten"),
    layer("Dense", units=st.integers(1, 12), opt_activation=act, opt_use_bias=st.booleans(),
          opt_kernel_initializer=kernel_init, opt_bias_initializer=vector_init,
          opt_kernel_regularizer=reg, opt_bias_regularizer=reg),
    layer("Dropout", rate=unit),
    layer("SpatialDropout2D", rate=unit),
    layer("BatchNormalization", opt_momentum=st.floats(0, 1), opt_epsilon=st.floats(1e-12, 1),
          opt_center=st.booleans(), opt_scale=st.booleans(),
          opt_beta_initializer=vector_init, opt_gamma_initializer=vector_init,
          opt_moving_mean_initializer=vector_init, opt_moving_variance_initializer=vector_init,
          opt_beta_regularizer=reg, opt_gamma_regularizer=reg),
    layer("LayerNormalization", opt_epsilon=st.floats(1e-12, 1), opt_center=st.booleans(), opt_scale=st.booleans(),
          opt_beta_initializer=vector_init, opt_gamma_initializer=vector_init,
          opt_beta_regularizer=reg, opt_gamma_regularizer=reg),
    layer("Activation", activation=act),
    layer("ReLU", opt_max_value=st.one_of(st.none(), st.floats(0, 1e6)),
          opt_negative_slope=st.floats(0, 1e3), opt_threshold=st.floats(0, 1e6)),
    layer("LeakyReLU", opt_negative_slope=st.floats(0, 1e3)),
    layer("ZeroPadding2D", opt_padding=st.one_of(
        st.integers(0, 3), st.lists(st.integers(0, 3), min_size=2, max_size=2),
        st.lists(st.lists(st.integers(0, 3), min_size=2, max_size=2), min_size=2, max_size=2))),
    layer("Rescaling", scale=finite, opt_offset=finite),
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
    # Every argument is drawn from its allowed domain, so the spec itself must accept it.
    layers = list(Variant.model_validate({"name": "p", "layers": specs}).layers or [])
    try:
        analysis = analyze(layers, shape)
    except SpecError:  # a shape the analysis refuses (a kernel larger than its input...)
        assume(False)
        return
    keras.utils.clear_session(free_memory=False)  # no gc.collect(): 0.8 s a model
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
