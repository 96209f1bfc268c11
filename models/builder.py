"""Build an uncompiled ``keras.Sequential`` from validated layer specs.

The only module of ``models`` that touches Keras, and only inside ``build_model``. Each
registered type (``models.spec.LAYER_TYPES``) builds the ``keras.layers`` class of its name,
looked up for the registry's names only, never for a name from input, and every argument Keras
would otherwise resolve by name (initializers, activations, regularizers) is passed as an
object from our own closed tables: a layer given ``"glorot_uniform"`` calls
``keras.initializers.get``, which goes through ``deserialize_keras_object``; given
``GlorotUniform()`` it does not. No name from user input is ever resolved by Keras, and
nothing goes through Keras deserialization (tests/integration/test_security_keras.py traps it).
The objects are the ones Keras's own lookup would make, created in the same order (a random
initializer draws its seed when created), so the models are the same, weight for weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from models.errors import SpecError, err
from models.graph import INPUT, is_stack, resolve
from models.spec import LAYER_TYPES, Layer, Regularizer

if TYPE_CHECKING:
    import keras

__all__ = ["build_model"]


def _initializers() -> dict[str, Any]:
    """Map ``InitializerName`` to Keras initializer classes (made fresh for every argument)."""
    from keras import initializers as ki

    return {
        "glorot_uniform": ki.GlorotUniform,
        "glorot_normal": ki.GlorotNormal,
        "he_uniform": ki.HeUniform,
        "he_normal": ki.HeNormal,
        "lecun_uniform": ki.LecunUniform,
        "lecun_normal": ki.LecunNormal,
        "orthogonal": ki.Orthogonal,
        "random_normal": ki.RandomNormal,
        "random_uniform": ki.RandomUniform,
        "truncated_normal": ki.TruncatedNormal,
        "zeros": ki.Zeros,
        "ones": ki.Ones,
    }


def _activations() -> dict[str, Any]:
    """Map ``ActivationName`` to Keras activation functions."""
    from keras import activations as ka

    return {
        "linear": ka.linear,
        "relu": ka.relu,
        "relu6": ka.relu6,
        "leaky_relu": ka.leaky_relu,
        "elu": ka.elu,
        "selu": ka.selu,
        "celu": ka.celu,
        "gelu": ka.gelu,
        "silu": ka.silu,
        "mish": ka.mish,
        "sigmoid": ka.sigmoid,
        "hard_sigmoid": ka.hard_sigmoid,
        "hard_silu": ka.hard_silu,
        "tanh": ka.tanh,
        "hard_tanh": ka.hard_tanh,
        "softmax": ka.softmax,
        "log_softmax": ka.log_softmax,
        "softplus": ka.softplus,
        "softsign": ka.softsign,
        "exponential": ka.exponential,
    }


def _regularizer(value: Regularizer) -> Any:
    """Return the Keras regularizer that serializes back to the same factors."""
    from keras import regularizers

    if value.l2 == 0.0:
        return regularizers.L1(value.l1)
    if value.l1 == 0.0:
        return regularizers.L2(value.l2)
    return regularizers.L1L2(l1=value.l1, l2=value.l2)


# The order Keras's constructors look initializers up in (kernel before bias, depthwise
# before pointwise, beta before gamma ...). A random initializer draws its seed when it is
# created, so ours are created in this order too, whatever the order of the spec's fields.
INITIALIZER_ORDER = (
    "kernel_initializer",
    "depthwise_initializer",
    "pointwise_initializer",
    "bias_initializer",
    "beta_initializer",
    "gamma_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
)


def _kwargs(
    layer: Layer, initializers: dict[str, Any], activations: dict[str, Any]
) -> dict[str, Any]:
    """Turn a spec into keyword arguments for its Keras class: objects, never names to resolve."""
    kwargs: dict[str, Any] = {}
    names: dict[str, str] = {}
    for key in type(layer).model_fields:
        if key in ("type", "name", "inputs"):
            continue
        value = getattr(layer, key)
        if isinstance(value, Regularizer):
            value = _regularizer(value)
        elif key.endswith("_initializer"):
            names[key] = value
            continue
        elif key == "activation":
            value = activations[value]
        kwargs[key] = value
    unknown = set(names) - set(INITIALIZER_ORDER)
    if unknown:  # a new spec field must take its place in INITIALIZER_ORDER first
        raise AssertionError(f"initializer arguments without a creation order: {unknown}")
    for key in INITIALIZER_ORDER:
        if key in names:
            kwargs[key] = initializers[names[key]]()
    return kwargs


def build_model(
    layers: Sequence[Layer], input_shape: tuple[int, ...], *, name: str = "model"
) -> keras.Model:
    """Return the built, uncompiled model for ``layers`` on ``input_shape``: a
    ``keras.Sequential`` for a plain stack, a Functional ``keras.Model`` for a graph (its
    layers created in the order written, each called on its ``inputs``)."""
    import keras
    from keras import layers as kl

    nodes = resolve(layers)
    classes = {name: getattr(kl, name) for name in LAYER_TYPES}  # the registry's names only
    initializers, activations = _initializers(), _activations()
    # Under a mixed policy (float16/bfloat16 compute) the last layer computes in float32, as
    # Keras's mixed-precision guide advises: a softmax and the loss in half precision lose
    # accuracy, and metrics such as top-k refuse half-precision predictions.
    mixed = keras.config.dtype_policy().name.startswith("mixed_")
    made: list[Any] = []
    for node in nodes:
        layer, i = node.layer, node.index
        kwargs = _kwargs(layer, initializers, activations)
        if mixed and i == len(layers) - 1:
            kwargs["dtype"] = keras.DTypePolicy("float32")
        try:
            made.append(classes[layer.type](name=node.name, **kwargs))
        except Exception as exc:
            given = layer.model_dump(mode="json", exclude={"type", "name", "inputs"})
            msg = f"Keras refused {layer.type} (layer {i}) with {given!r}: {exc}"
            raise SpecError([err(["layers", i], msg)]) from exc
    try:
        if is_stack(nodes):
            return keras.Sequential([keras.Input(shape=tuple(input_shape)), *made], name=name)
        tensors = {INPUT: keras.Input(shape=tuple(input_shape), name=INPUT)}
        for node, keras_layer in zip(nodes, made, strict=True):
            args = [tensors[p] for p in node.inputs]
            tensors[node.name] = keras_layer(args if len(args) > 1 else args[0])
        return keras.Model(tensors[INPUT], tensors[nodes[-1].name], name=name)
    except Exception as exc:
        raise SpecError([err(["layers"], f"Keras could not assemble the model: {exc}")]) from exc
