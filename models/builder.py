"""Build an uncompiled ``keras.Sequential`` from validated layer specs.

The only module of ``models`` that touches Keras, and only inside ``build_model``. Each
whitelisted type maps to its Keras class through our own table; no name from user input
is ever resolved, and nothing goes through Keras deserialization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.analysis import layer_names
from models.errors import SpecError, err
from models.spec import Layer, Regularizer

if TYPE_CHECKING:
    import keras

__all__ = ["build_model"]


def _classes() -> dict[str, Any]:
    """Map our layer types to Keras classes (explicit, never by getattr on input)."""
    from keras import layers as kl

    return {
        "Conv2D": kl.Conv2D,
        "SeparableConv2D": kl.SeparableConv2D,
        "DepthwiseConv2D": kl.DepthwiseConv2D,
        "Conv1D": kl.Conv1D,
        "MaxPooling2D": kl.MaxPooling2D,
        "AveragePooling2D": kl.AveragePooling2D,
        "MaxPooling1D": kl.MaxPooling1D,
        "AveragePooling1D": kl.AveragePooling1D,
        "GlobalAveragePooling2D": kl.GlobalAveragePooling2D,
        "GlobalMaxPooling2D": kl.GlobalMaxPooling2D,
        "GlobalAveragePooling1D": kl.GlobalAveragePooling1D,
        "GlobalMaxPooling1D": kl.GlobalMaxPooling1D,
        "Flatten": kl.Flatten,
        "Dense": kl.Dense,
        "Dropout": kl.Dropout,
        "SpatialDropout2D": kl.SpatialDropout2D,
        "BatchNormalization": kl.BatchNormalization,
        "LayerNormalization": kl.LayerNormalization,
        "Activation": kl.Activation,
        "ReLU": kl.ReLU,
        "LeakyReLU": kl.LeakyReLU,
        "ZeroPadding2D": kl.ZeroPadding2D,
        "Rescaling": kl.Rescaling,
        "Reshape": kl.Reshape,
    }


def _regularizer(value: Regularizer) -> Any:
    """Return the Keras regularizer that serializes back to the same factors."""
    from keras import regularizers

    if value.l2 == 0.0:
        return regularizers.L1(value.l1)
    if value.l1 == 0.0:
        return regularizers.L2(value.l2)
    return regularizers.L1L2(l1=value.l1, l2=value.l2)


def _kwargs(layer: Layer) -> dict[str, Any]:
    """Turn a spec into keyword arguments for its Keras class."""
    kwargs: dict[str, Any] = {}
    for key in type(layer).model_fields:
        if key == "type":
            continue
        value = getattr(layer, key)
        kwargs[key] = _regularizer(value) if isinstance(value, Regularizer) else value
    return kwargs


def build_model(
    layers: Sequence[Layer], input_shape: tuple[int, ...], *, name: str = "model"
) -> keras.Model:
    """Return the built, uncompiled ``keras.Sequential`` for ``layers`` on ``input_shape``."""
    import keras

    classes = _classes()
    built: list[Any] = [keras.Input(shape=tuple(input_shape))]
    for i, (layer, layer_name) in enumerate(zip(layers, layer_names(layers), strict=True)):
        kwargs = _kwargs(layer)
        try:
            built.append(classes[layer.type](name=layer_name, **kwargs))
        except Exception as exc:
            msg = f"Keras refused {layer.type} (layer {i}) with {kwargs!r}: {exc}"
            raise SpecError([err(["layers", i], msg)]) from exc
    try:
        model = keras.Sequential(built, name=name)
    except Exception as exc:
        raise SpecError([err(["layers"], f"Keras could not assemble the model: {exc}")]) from exc
    return model
