"""A corpus of malformed variants, each with the location and the message it must fail with:
checked by models (tests/unit/models/test_models_malformed.py) and through the api
(test_models_corpus_api.py)."""
# ruff: noqa: E501 - the case tables read best one case per line

from __future__ import annotations

from typing import Any

from models import Limits
from tests.support import kjson

C = {"type": "Conv2D", "filters": 8, "kernel_size": 3}
F = {"type": "Flatten"}
D10 = {"type": "Dense", "units": 10, "activation": "softmax"}
SMALL = Limits(max_layers=4, max_params=10_000, max_flops=10_000_000)


def variant(*layers: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "v", "layers": list(layers), **extra}


def keras(*layers: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "k", "keras_config": kjson.sequential(*layers), **extra}


KL = ["keras_config", "config", "layers"]

CASES: list[tuple[str, dict[str, Any], list[Any], str]] = [
    ("unknown type", variant({"type": "Lambda"}), ["layers", 0, "type"], "unknown layer type 'Lambda'; allowed: Conv2D"),
    ("missing type", variant({"filters": 3}), ["layers", 0, "type"], "no 'type'"),
    ("unknown argument", variant(C | {"kernal_size": 3}), ["layers", 0, "kernal_size"], "unknown argument 'kernal_size' for Conv2D"),
    ("filters zero", variant(C | {"filters": 0}, F, D10), ["layers", 0, "filters"], "greater than or equal to 1"),
    ("filters huge", variant(C | {"filters": 5000}, F, D10), ["layers", 0, "filters"], "less than or equal to 4096"),
    ("negative kernel", variant(C | {"kernel_size": -3}, F, D10), ["layers", 0, "kernel_size"], "between 1 and 64, got -3"),
    ("kernel triple", variant(C | {"kernel_size": [3, 3, 3]}), ["layers", 0, "kernel_size"], "list of 2 integers"),
    ("bool kernel", variant(C | {"kernel_size": True}), ["layers", 0, "kernel_size"], "an integer or a list"),
    ("bad activation", variant(C | {"activation": "relu7"}), ["layers", 0, "activation"], "'relu7' is not allowed"),
    ("bad padding", variant(C | {"padding": "full"}), ["layers", 0, "padding"], "'full' is not allowed"),
    ("causal on 2D", variant(C | {"padding": "causal"}), ["layers", 0, "padding"], "'causal' is not allowed"),
    ("missing filters", variant({"type": "Conv2D", "kernel_size": 3}), ["layers", 0, "filters"], "missing required argument 'filters' for Conv2D"),
    ("missing units", variant(F, {"type": "Dense"}), ["layers", 1, "units"], "missing required argument 'units'"),
    ("dropout rate 1", variant({"type": "Dropout", "rate": 1.0}), ["layers", 0, "rate"], "less than 1"),
    ("strides and dilation", variant(C | {"strides": 2, "dilation_rate": 2}), ["layers", 0, "dilation_rate"], "strides > 1 together with dilation_rate > 1"),
    ("bad initializer", variant(C | {"kernel_initializer": "my_init"}), ["layers", 0, "kernel_initializer"], "'my_init' is not allowed"),
    ("bad regularizer", variant(C | {"kernel_regularizer": "l3"}), ["layers", 0, "kernel_regularizer"], "unknown regularizer 'l3'"),
    ("regularizer factor", variant(C | {"kernel_regularizer": {"l2": 5}}), ["layers", 0, "kernel_regularizer", "l2"], "less than or equal to 1"),
    ("reshape two -1", variant({"type": "Reshape", "target_shape": [-1, -1]}), ["layers", 0, "target_shape"], "at most one dimension may be -1"),
    ("bad name", {"name": "a b", "layers": [D10]}, ["name"], "letters, digits"),
    ("long name", {"name": "a" * 65, "layers": [D10]}, ["name"], "at most 64"),
    ("bad input_shape", variant(F, D10, input_shape=[28, 28, 1, 1]), ["input_shape"], "1 to 3 integers"),
    ("zero input dim", variant(F, D10, input_shape=[0, 28]), ["input_shape"], "between 1 and 4096"),
    ("unknown variant key", variant(D10, optimizer="adam"), ["optimizer"], "unknown argument 'optimizer' for a variant"),
    ("both", {"name": "x", "layers": [D10], "keras_config": kjson.model_a()}, ["keras_config"], "not both"),
    ("neither", {"name": "x"}, ["layers"], "give exactly one of layers or keras_config"),
    ("empty layers", {"name": "x", "layers": []}, ["layers"], "at least 1"),
    ("layer not object", variant(5), ["layers", 0], "valid dictionary"),
    # at least one malformed case per layer type
    ("separable depth_multiplier", variant({"type": "SeparableConv2D", "filters": 4, "kernel_size": 3, "depth_multiplier": 0}), ["layers", 0, "depth_multiplier"], "greater than or equal to 1"),
    ("depthwise filters", variant({"type": "DepthwiseConv2D", "kernel_size": 3, "filters": 8}), ["layers", 0, "filters"], "unknown argument 'filters' for DepthwiseConv2D"),
    ("avgpool2d zero", variant({"type": "AveragePooling2D", "pool_size": [2, 0]}), ["layers", 0, "pool_size"], "between 1 and 64, got 0"),
    ("maxpool1d pair", variant({"type": "MaxPooling1D", "pool_size": [2, 2]}), ["layers", 0, "pool_size"], "must be an integer, got [2, 2]"),
    ("avgpool1d causal", variant({"type": "AveragePooling1D", "padding": "causal"}), ["layers", 0, "padding"], "'causal' is not allowed"),
    ("global max 1d keepdims", variant({"type": "GlobalMaxPooling1D", "keepdims": "maybe"}), ["layers", 0, "keepdims"], "valid boolean"),
    ("global avg 1d pool_size", variant({"type": "GlobalAveragePooling1D", "pool_size": 2}), ["layers", 0, "pool_size"], "unknown argument 'pool_size' for GlobalAveragePooling1D"),
    ("global max 2d keepdims", variant({"type": "GlobalMaxPooling2D", "keepdims": [True]}), ["layers", 0, "keepdims"], "valid boolean"),
    ("global avg 2d data_format", variant({"type": "GlobalAveragePooling2D", "data_format": "channels_first"}), ["layers", 0, "data_format"], "unknown argument 'data_format' for GlobalAveragePooling2D"),
    ("batchnorm momentum", variant({"type": "BatchNormalization", "momentum": 1.5}), ["layers", 0, "momentum"], "less than or equal to 1"),
    ("batchnorm orthogonal gamma", variant({"type": "BatchNormalization", "gamma_initializer": "orthogonal"}), ["layers", 0, "gamma_initializer"], "'orthogonal' needs a weight of at least 2 dimensions"),
    ("layernorm epsilon", variant({"type": "LayerNormalization", "epsilon": 0}), ["layers", 0, "epsilon"], "greater than 0"),
    ("activation missing", variant({"type": "Activation"}), ["layers", 0, "activation"], "missing required argument 'activation' for Activation"),
    ("relu negative threshold", variant({"type": "ReLU", "threshold": -1.0}), ["layers", 0, "threshold"], "greater than or equal to 0"),
    ("relu negative max_value", variant({"type": "ReLU", "max_value": -6}), ["layers", 0, "max_value"], "greater than or equal to 0"),
    ("leaky relu negative slope", variant({"type": "LeakyReLU", "negative_slope": -0.1}), ["layers", 0, "negative_slope"], "greater than or equal to 0"),
    ("zero padding triple", variant({"type": "ZeroPadding2D", "padding": [[1, 2, 3], [0, 0]]}), ["layers", 0, "padding"], "[[top, bottom], [left, right]]"),
    ("rescaling huge scale", variant({"type": "Rescaling", "scale": 1e7}), ["layers", 0, "scale"], "less than or equal to 1000000"),
    ("rescaling missing scale", variant({"type": "Rescaling", "offset": 1}), ["layers", 0, "scale"], "missing required argument 'scale' for Rescaling"),
    ("orthogonal bias", variant(F, D10 | {"bias_initializer": "orthogonal"}), ["layers", 1, "bias_initializer"], "'orthogonal' needs a weight of at least 2 dimensions"),
    ("orthogonal conv bias", variant(C | {"bias_initializer": "orthogonal"}), ["layers", 0, "bias_initializer"], "'orthogonal' needs a weight of at least 2 dimensions"),
    # keras_config, checked at parse time too
    ("lambda", keras(kjson.layer("Lambda", function="x")), [*KL, 1, "class_name"], "Lambda layers run arbitrary code"),
    ("unknown class", keras(kjson.layer("MultiHeadAttention")), [*KL, 1, "class_name"], "unknown layer type 'MultiHeadAttention'"),
    ("custom module", keras(kjson.conv2d() | {"module": "evil.layers"}), [*KL, 1, "module"], "not Keras's own"),
    ("lookalike module", keras(kjson.conv2d() | {"module": "keras_evil"}), [*KL, 1, "module"], "not Keras's own"),
    ("registered custom", keras(kjson.conv2d() | {"registered_name": "pkg>MyConv"}), [*KL, 1, "registered_name"], "custom object"),
    ("custom initializer module", keras(kjson.conv2d(kernel_initializer=kjson.init("GlorotUniform") | {"module": "x.init"})), [*KL, 1, "config", "kernel_initializer", "module"], "not Keras's own"),
    ("unsupported initializer", keras(kjson.conv2d(kernel_initializer=kjson.init("VarianceScaling"))), [*KL, 1, "config", "kernel_initializer"], "unsupported initializer 'VarianceScaling'"),
    ("initializer seed", keras(kjson.conv2d(kernel_initializer=kjson.init("HeNormal", seed=3))), [*KL, 1, "config", "kernel_initializer", "config", "seed"], "seeds come from the trial"),
    ("channels_first", keras(kjson.conv2d(data_format="channels_first")), [*KL, 1, "config", "data_format"], "channels_first' is not supported"),
    ("groups", keras(kjson.conv2d(groups=2)), [*KL, 1, "config", "groups"], "groups=2 is not supported"),
    ("frozen layer", keras(kjson.conv2d(trainable=False)), [*KL, 1, "config", "trainable"], "trainable=False"),
    ("constraint", keras(kjson.conv2d(kernel_constraint={"class_name": "MaxNorm", "config": {}})), [*KL, 1, "config", "kernel_constraint"], "not supported"),
    ("float16", keras(kjson.conv2d(dtype="float16")), [*KL, 1, "config", "dtype"], "only float32"),
    ("mixed policy", keras(kjson.conv2d(dtype=kjson.POLICY | {"config": {"name": "mixed_float16"}})), [*KL, 1, "config", "dtype"], "dtype 'mixed_float16' is not supported"),
    ("keras orthogonal bias", keras(kjson.dense(bias_initializer=kjson.init("Orthogonal", gain=1.0))), [*KL, 1, "config", "bias_initializer"], "'orthogonal' needs a weight of at least 2 dimensions"),
    ("keras orthogonal beta", keras(kjson.layer("BatchNormalization", beta_initializer="orthogonal")), [*KL, 1, "config", "beta_initializer"], "'orthogonal' needs a weight of at least 2 dimensions"),
    ("keras negative threshold", keras(kjson.layer("ReLU", threshold=-0.5)), [*KL, 1, "config", "threshold"], "greater than or equal to 0"),
    ("unknown keras arg", keras(kjson.conv2d(lora_magic=1)), [*KL, 1, "config", "lora_magic"], "unsupported argument 'lora_magic'"),
    ("keras filters range", keras(kjson.conv2d(filters=0)), [*KL, 1, "config", "filters"], "greater than or equal to 1"),
    ("functional without input", {"name": "f", "keras_config": {"module": "keras", "class_name": "Functional", "config": {}}}, ["keras_config", "config", "input_layers"], "a model with 0 inputs is not supported"),
    ("functional get_config", {"name": "f", "keras_config": {"name": "m", "layers": [], "input_layers": [], "output_layers": []}}, ["keras_config", "output_layers"], "a model with 0 outputs"),
    ("not a model", {"name": "f", "keras_config": {"module": "keras", "class_name": "Dense", "config": {}}}, ["keras_config", "class_name"], "only Sequential and Functional"),
    ("custom model module", {"name": "f", "keras_config": kjson.model_a() | {"module": "mypkg"}}, ["keras_config", "module"], "not Keras's own"),
    ("late input layer", keras(kjson.conv2d(), kjson.input_layer()), [*KL, 2, "class_name"], "may only come first"),
]  # fmt: skip


ANALYSIS_CASES: list[tuple[str, dict[str, Any], Any, Limits | None, list[Any], str]] = [
    ("kernel too large", variant(C | {"kernel_size": 5}, F, D10), (3, 3, 1), None, ["layers", 0, "kernel_size"], "kernel 5x5 is larger than its input 3x3"),
    ("dilated kernel too large", variant(C | {"dilation_rate": 3}, F, D10), (6, 6, 1), None, ["layers", 0, "kernel_size"], "kernel 7x7 is larger than its input 6x6"),
    ("pool too large", variant(C, {"type": "MaxPooling2D", "pool_size": 4}, F, D10), (5, 5, 1), None, ["layers", 1, "pool_size"], "pool 4x4 is larger than its input 3x3"),
    ("last units", variant(C, F, D10 | {"units": 9}), (28, 28, 1), None, ["layers", 2, "units"], "outputs (9,) but the dataset has 10 classes"),
    ("dense on 4-D", variant(C, D10), (28, 28, 1), None, ["layers", 1], "outputs (26, 26, 10) but the dataset has 10 classes: add Flatten"),
    ("last not dense", variant(F, D10, {"type": "Reshape", "target_shape": [2, 5]}), (28, 28, 1), None, ["layers", 2], "outputs (2, 5)"),
    ("reshape mismatch", variant({"type": "Reshape", "target_shape": [27, 28, 1]}, F, D10), (28, 28, 1), None, ["layers", 0, "target_shape"], "(784 values) into [27, 28, 1]"),
    ("reshape -1 mismatch", variant({"type": "Reshape", "target_shape": [-1, 5]}, F, D10), (28, 28, 1), None, ["layers", 0, "target_shape"], "cannot reshape"),
    ("channel-less input", variant(C, F, D10), (28, 28), None, ["layers", 0], "give input_shape [28, 28, 1]"),
    ("conv2d on vector", variant(F, C, F, D10), (28, 28, 1), None, ["layers", 1], "needs a 4-D input"),
    ("conv1d on image", variant({"type": "Conv1D", "filters": 4, "kernel_size": 3}, F, D10), (28, 28, 1), None, ["layers", 0], "Conv1D needs a 3-D input"),
    ("global pool on vector", variant(F, {"type": "GlobalAveragePooling2D"}, D10), (28, 28, 1), None, ["layers", 1], "needs a 4-D input"),
    ("spatial dropout on vector", variant(F, {"type": "SpatialDropout2D", "rate": 0.1}, D10), (28, 28, 1), None, ["layers", 1], "needs a 4-D input"),
    ("too many layers", variant(C, F, F, F, F, D10), (28, 28, 1), SMALL, ["layers"], "6 layers exceeds the limit of 4"),
    ("too many params", variant(C, F, D10), (28, 28, 1), SMALL, ["layers"], "54,170 parameters exceeds the limit of 10,000"),
    ("too many flops", variant(C | {"filters": 64}, C | {"filters": 64}, F, D10), (28, 28, 1), Limits(10, 10**9, 10_000_000), ["layers"], "exceeds the limit of 10,000,000"),
    ("no input shape", variant(F, D10), None, None, ["input_shape"], "no input shape"),
]  # fmt: skip
