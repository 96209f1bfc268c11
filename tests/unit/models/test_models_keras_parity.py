"""Analysis equals what Keras builds: per layer type, the article's models, to_json round trips."""
# ruff: noqa: E501 - the case tables read best one case per line

from __future__ import annotations

import json
from typing import Any

import pytest

keras = pytest.importorskip("keras")

from models import analyze, build_model, layers_from_keras_config, parse_variant  # noqa: E402
from models.analysis import Analysis  # noqa: E402
from models.errors import SpecError  # noqa: E402
from models.spec import Layer  # noqa: E402

IMG = (12, 12, 3)
SEQ = (16, 4)

# (input shape, layers) exercising every layer type and its main options.
VALID: dict[str, tuple[tuple[int, ...], list[dict[str, Any]]]] = {
    "Conv2D": (IMG, [{"type": "Conv2D", "filters": 5, "kernel_size": [3, 2], "strides": [2, 1], "padding": "same", "kernel_regularizer": "l2"}]),
    "Conv2D dilated": (IMG, [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "dilation_rate": 2, "use_bias": False, "kernel_initializer": "he_normal"}]),
    "SeparableConv2D": (IMG, [{"type": "SeparableConv2D", "filters": 6, "kernel_size": 3, "depth_multiplier": 2, "padding": "same", "strides": 2}]),
    "DepthwiseConv2D": (IMG, [{"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 3, "depthwise_regularizer": {"l1": 0.001, "l2": 0.002}}]),
    "Conv1D": (SEQ, [{"type": "Conv1D", "filters": 6, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}]),
    "Conv1D strided": (SEQ, [{"type": "Conv1D", "filters": 6, "kernel_size": [5], "strides": 3}]),
    "MaxPooling2D": (IMG, [{"type": "MaxPooling2D", "pool_size": 3, "strides": 2, "padding": "same"}]),
    "AveragePooling2D": (IMG, [{"type": "AveragePooling2D", "pool_size": [2, 3]}]),
    "MaxPooling1D": (SEQ, [{"type": "MaxPooling1D", "pool_size": 3}]),
    "AveragePooling1D": (SEQ, [{"type": "AveragePooling1D", "pool_size": 2, "padding": "same", "strides": 3}]),
    "GlobalAveragePooling2D": (IMG, [{"type": "GlobalAveragePooling2D"}]),
    "GlobalMaxPooling2D": (IMG, [{"type": "GlobalMaxPooling2D", "keepdims": True}]),
    "GlobalAveragePooling1D": (SEQ, [{"type": "GlobalAveragePooling1D"}]),
    "GlobalMaxPooling1D": (SEQ, [{"type": "GlobalMaxPooling1D"}]),
    "Flatten": (IMG, [{"type": "Flatten"}, {"type": "Flatten"}]),
    "Dense": (IMG, [{"type": "Flatten"}, {"type": "Dense", "units": 7, "activation": "swish"}]),
    "Dense on 3-D": (IMG, [{"type": "Dense", "units": 4, "bias_initializer": "ones"}]),
    "Dense L1": (SEQ, [{"type": "Dense", "units": 3, "kernel_regularizer": "l1", "bias_regularizer": {"l1": 0.3}, "kernel_initializer": "orthogonal"}]),
    "Dense float32 L1": (SEQ, [{"type": "Dense", "units": 2, "kernel_regularizer": {"l1": 1e-300}, "bias_regularizer": {"l1": 0.123456789}}]),
    "Conv1D L1L2": (SEQ, [{"type": "Conv1D", "filters": 2, "kernel_size": 2, "kernel_regularizer": {"l1": 0.123457, "l2": 0.1}, "bias_regularizer": "l1_l2"}]),
    "Dropout": (IMG, [{"type": "Dropout", "rate": 0.5}]),
    "SpatialDropout2D": (IMG, [{"type": "SpatialDropout2D", "rate": 0.2}]),
    "BatchNormalization": (IMG, [{"type": "BatchNormalization", "momentum": 0.9, "center": False}]),
    "LayerNormalization": (SEQ, [{"type": "LayerNormalization", "epsilon": 1e-5, "scale": False}]),
    "Activation": (IMG, [{"type": "Activation", "activation": "gelu"}]),
    "ReLU": (IMG, [{"type": "ReLU", "max_value": 6.0, "negative_slope": 0.1}]),
    "LeakyReLU": (IMG, [{"type": "LeakyReLU", "negative_slope": 0.2}]),
    "ZeroPadding2D": (IMG, [{"type": "ZeroPadding2D", "padding": [[1, 2], [0, 3]]}]),
    "Rescaling": (IMG, [{"type": "Rescaling", "scale": 1 / 255, "offset": -0.5}]),
    "Reshape": (IMG, [{"type": "Reshape", "target_shape": [-1, 9]}]),
    "RandomFlip": (IMG, [{"type": "RandomFlip", "mode": "horizontal"}]),
    "RandomRotation": (IMG, [{"type": "RandomRotation", "factor": 0.1, "fill_mode": "constant", "fill_value": 0.5}]),
    "RandomTranslation": (IMG, [{"type": "RandomTranslation", "height_factor": [-0.2, 0.1], "width_factor": 0.1, "interpolation": "nearest"}]),
    "RandomZoom": (IMG, [{"type": "RandomZoom", "height_factor": 0.2}, {"type": "RandomZoom", "height_factor": [0.1, -0.3], "width_factor": 0.1}]),
    "RandomContrast": (IMG, [{"type": "RandomContrast", "factor": [0.3, 0.1], "value_range": [0, 1]}]),
    "RandomCrop": (IMG, [{"type": "RandomCrop", "height": 12, "width": 12}, {"type": "Conv2D", "filters": 2, "kernel_size": 3}]),
}  # fmt: skip

ARTICLE: dict[str, tuple[list[dict[str, Any]], int]] = {
    "A": ([{"type": "Conv2D", "filters": 128, "kernel_size": [3, 3], "activation": "relu"}], 866_570),
    "B": ([{"type": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"}] * 2 + [{"type": "MaxPooling2D", "pool_size": 2}], 129_738),
    "C": ([{"type": "Conv2D", "filters": 64, "kernel_size": 3, "activation": "relu"}] * 3 + [{"type": "MaxPooling2D", "pool_size": 2}], 151_946),
}  # fmt: skip
HEAD = [{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]


def weights(ws: list[Any]) -> int:
    return sum(int(w.numpy().size) for w in ws)


def assert_matches(model: Any, analysis: Analysis) -> None:
    assert model.count_params() == analysis.params
    assert weights(model.trainable_weights) == analysis.trainable_params
    assert weights(model.non_trainable_weights) == analysis.non_trainable_params
    assert [layer.name for layer in model.layers] == [a.name for a in analysis.layers]
    shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert shapes == [a.output_shape for a in analysis.layers]
    assert [layer.count_params() for layer in model.layers] == [a.params for a in analysis.layers]


def roundtrip(layers: list[Layer], model: Any, shape: tuple[int, ...]) -> None:
    for conf in (json.loads(model.to_json()), model.get_config()):
        back, back_shape = layers_from_keras_config(conf)
        assert back == layers
        assert back_shape == shape


@pytest.fixture(autouse=True)
def _clear() -> None:
    keras.utils.clear_session(free_memory=False)  # no gc.collect(): 0.8 s a test


@pytest.mark.parametrize(("shape", "spec"), VALID.values(), ids=VALID.keys())
def test_layer_type_matches_keras(shape: tuple[int, ...], spec: list[dict[str, Any]]) -> None:
    layers = list(parse_variant({"name": "v", "layers": spec}).layers or [])
    analysis = analyze(layers, shape)
    model = build_model(layers, shape)
    assert_matches(model, analysis)
    roundtrip(layers, model, shape)


def test_every_layer_type_is_covered() -> None:
    from models.merge import MERGE_TYPES  # one-input layers here; test_models_graph merges
    from models.spec import LAYER_TYPES

    covered = {layer["type"] for _, spec in VALID.values() for layer in spec}
    assert covered == set(LAYER_TYPES) - MERGE_TYPES


@pytest.mark.parametrize(("spec", "params"), ARTICLE.values(), ids=ARTICLE.keys())
def test_article_models(spec: list[dict[str, Any]], params: int) -> None:
    layers = list(parse_variant({"name": "v", "layers": spec + HEAD}).layers or [])
    analysis = analyze(layers, (28, 28, 1), num_classes=10)
    assert analysis.params == params
    model = build_model(layers, (28, 28, 1))
    assert_matches(model, analysis)
    roundtrip(layers, model, (28, 28, 1))


def test_article_a_flops_and_receptive_field() -> None:
    layers = list(parse_variant({"name": "a", "layers": ARTICLE["A"][0] + HEAD}).layers or [])
    a = analyze(layers, (28, 28, 1), num_classes=10).to_dict()
    assert a["flops"] == 26 * 26 * 128 * 9 + 26 * 26 * 128 * 10
    assert [layer["receptive_field"] for layer in a["layers"]] == [[3, 3], [28, 28], [28, 28]]
    assert a["layers"][0]["output_shape"] == [26, 26, 128]
    assert json.loads(json.dumps(a)) == a


def test_hand_written_keras_sequential_imports() -> None:
    """A user's own Keras code, serialized both ways, analyses to what Keras counts."""
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            L.Rescaling(1.0 / 255),
            L.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"),
            L.BatchNormalization(),
            L.MaxPooling2D((2, 2)),
            L.SeparableConv2D(16, 3, padding="same", activation="swish"),
            L.GlobalAveragePooling2D(),
            L.Dropout(0.3),
            L.Dense(
                10, activation="softmax", kernel_regularizer=keras.regularizers.L1L2(1e-4, 1e-3)
            ),
        ]
    )
    for conf in (json.loads(model.to_json()), model.get_config()):
        layers, shape = layers_from_keras_config(conf)
        assert shape == (28, 28, 1)
        analysis = analyze(layers, shape, num_classes=10)
        assert analysis.params == model.count_params()
        assert [a.output_shape for a in analysis.layers] == [
            tuple(layer.output.shape[1:]) for layer in model.layers
        ]


def test_keras_sequential_without_input_layer() -> None:
    model = keras.Sequential([keras.layers.Dense(3)])
    model.build((None, 5))
    layers, shape = layers_from_keras_config(json.loads(model.to_json()))
    assert shape == (5,)
    assert analyze(layers, shape).params == model.count_params() == 18


def test_builder_error_names_layer() -> None:
    from models.layers import DenseSpec, FlattenSpec

    bad = [FlattenSpec(), DenseSpec.model_construct(type="Dense", units=-1)]
    with pytest.raises(SpecError) as info:
        build_model(bad, (4,))
    assert info.value.errors[0]["loc"] == ["layers", 1]
    assert "Dense (layer 1)" in info.value.errors[0]["msg"]
