"""Hand-written Keras 3.15 ``to_json()`` fragments for tests that must not import Keras."""

from __future__ import annotations

import copy
from typing import Any

POLICY = {
    "module": "keras",
    "class_name": "DTypePolicy",
    "config": {"name": "float32"},
    "registered_name": None,
}


def init(cls: str, **config: Any) -> dict[str, Any]:
    base = {"seed": None} if cls not in ("Zeros", "Ones") else {}
    if cls in ("GlorotUniform", "HeNormal"):
        base |= {"input_axes": None, "output_axes": None}
    return {
        "module": "keras.initializers",
        "class_name": cls,
        "config": base | config,
        "registered_name": None,
    }


def layer(cls: str, **config: Any) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": cls,
        "config": {"name": cls.lower(), "trainable": True, "dtype": copy.deepcopy(POLICY)} | config,
        "registered_name": None,
    }


def conv2d(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "filters": 8,
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "valid",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "groups": 1,
        "activation": "relu",
        "use_bias": True,
        "kernel_initializer": init("GlorotUniform"),
        "bias_initializer": init("Zeros"),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }
    return layer("Conv2D", **(cfg | over))


def dense(units: int = 10, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "units": units,
        "activation": "softmax",
        "use_bias": True,
        "kernel_initializer": init("GlorotUniform"),
        "bias_initializer": init("Zeros"),
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
    }
    return layer("Dense", **(cfg | over))


def input_layer(shape: tuple[int, ...] = (28, 28, 1)) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": [None, *shape],
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": "input_layer",
            "optional": False,
        },
        "registered_name": None,
    }


def sequential(*layers: dict[str, Any], with_input: bool = True) -> dict[str, Any]:
    body = [input_layer()] if with_input else []
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "trainable": True,
            "dtype": copy.deepcopy(POLICY),
            "layers": body + list(layers),
        },
        "registered_name": None,
    }


def model_a() -> dict[str, Any]:
    return sequential(conv2d(filters=128), layer("Flatten", data_format="channels_last"), dense())
