"""The declarative architecture language: one pydantic model per whitelisted Keras layer.

The layer registry: each layer type is one class here, registered once with ``@register``
(as Keras registers a layer class), and that class is all there is to know about it: its
arguments (the pydantic fields), its Keras class (its ``type`` is the name of a
``keras.layers`` class, which ``models.builder`` resolves for the names of this closed
registry, never for input; ``models.keras_import`` reads configs by the same name) and its
analysis rule (``infer``: output shape, parameters, FLOPs and receptive
field, for ``models.analysis``). Adding a layer type is adding one class here.

Argument names are Keras's own. Every value is bounded, every string is an enum, and the
set of layer types is closed (``LAYER_TYPES``); nothing here resolves a class from user
input. ``parse_variant`` validates a variant and raises ``SpecError`` with clean locations.

Regularizer policy: ``*_regularizer`` takes ``null``, ``"l1"``, ``"l2"``, ``"l1_l2"`` (Keras's
0.01 factors) or ``{"l1": x, "l2": y}`` with factors in [0, 1], kept at float32 precision (the
shortest decimal of the float32 value, as Keras stores L1 factors); ``activity_regularizer``,
constraints and initializer arguments are not supported.

Initializers: kernels take any of ``INITIALIZERS``; 1-D weights (biases, normalization
``beta``/``gamma``/moving statistics) take ``VECTOR_INITIALIZERS``, which leaves out
``orthogonal`` (Keras refuses it for a tensor of fewer than 2 dimensions).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.errors import CUSTOM_REFUSED, ErrorDict, SpecError, err
from models.shapes import Step, Walker

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LAYER_TYPES",
    "MAX_LAYERS",
    "VECTOR_INITIALIZERS",
    "ActivationName",
    "InitializerName",
    "Layer",
    "LayerSpec",
    "Regularizer",
    "Variant",
    "VectorInitializerName",
    "parse_variant",
    "register",
]

ActivationName = Literal[
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "sigmoid", "hard_sigmoid", "hard_silu", "tanh", "hard_tanh", "softmax", "log_softmax",
    "softplus", "softsign", "exponential",
]  # fmt: skip
ACTIVATIONS: tuple[str, ...] = ActivationName.__args__  # type: ignore[attr-defined]
_ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}

InitializerName = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "random_normal", "random_uniform", "truncated_normal",
    "zeros", "ones",
]  # fmt: skip
INITIALIZERS: tuple[str, ...] = InitializerName.__args__  # type: ignore[attr-defined]
_VectorInitializerLiteral = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "random_normal", "random_uniform", "truncated_normal", "zeros", "ones",
]  # fmt: skip
VECTOR_INITIALIZERS: tuple[str, ...] = _VectorInitializerLiteral.__args__  # type: ignore[attr-defined]


def _vector_initializer(value: Any) -> Any:
    """Refuse ``orthogonal`` for a 1-D weight with a reason (Keras fails only when building)."""
    if value == "orthogonal":
        raise ValueError(
            "'orthogonal' needs a weight of at least 2 dimensions and this one is a vector;"
            f" allowed: {', '.join(VECTOR_INITIALIZERS)}"
        )
    return value


# An initializer for a 1-D weight: any of INITIALIZERS but orthogonal.
VectorInitializerName = Annotated[_VectorInitializerLiteral, BeforeValidator(_vector_initializer)]
MAX_LAYERS = 1000  # per variant, native layers and keras_config alike


def _int_tuple(n: int, lo: int, hi: int) -> Callable[[Any], tuple[int, ...]]:
    """Return a validator turning an int or an n-list of ints into a bounded n-tuple."""
    shape = "an integer" if n == 1 else f"an integer or a list of {n} integers"

    def check(value: Any) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value] * n
        if (
            not isinstance(value, list | tuple)
            or len(value) != n
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
        ):
            raise ValueError(f"must be {shape}, got {value!r}")
        for v in value:
            if not lo <= v <= hi:
                raise ValueError(f"must be between {lo} and {hi}, got {v}")
        return tuple(value)

    return check


Single = Annotated[tuple[int], BeforeValidator(_int_tuple(1, 1, 64))]
Pair = Annotated[tuple[int, int], BeforeValidator(_int_tuple(2, 1, 64))]
Activation = Annotated[
    ActivationName,
    BeforeValidator(
        lambda v: _ACTIVATION_ALIASES.get(v, v) if v is None or isinstance(v, str) else v
    ),
]
Filters = Annotated[int, Field(ge=1, le=4096)]
Multiplier = Annotated[int, Field(ge=1, le=64)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
Epsilon = Annotated[float, Field(gt=0.0, le=1.0)]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]


def float32_factor(value: float) -> float:
    """Return the shortest decimal with ``value``'s float32 value (how Keras keeps an L1 factor).

    ``0.01`` stays ``0.01`` instead of coming back from Keras as ``0.009999999776482582``.
    """
    packed = struct.pack("<f", value)
    single: float = struct.unpack("<f", packed)[0]  # 1e-300 is 0.0 in float32, as in Keras
    for digits in range(1, 10):
        short = float(f"{single:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return single  # pragma: no cover - 9 significant digits always identify a float32


class Regularizer(BaseModel):
    """L1/L2 weight penalty factors (Keras ``L1``, ``L2`` or ``L1L2``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    l1: float = Field(default=0.0, ge=0.0, le=1.0)
    l2: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        names = {"l1": {"l1": 0.01}, "l2": {"l2": 0.01}, "l1_l2": {"l1": 0.01, "l2": 0.01}}
        if isinstance(value, str):
            if value not in names:
                raise ValueError(f"unknown regularizer {value!r}; allowed: l1, l2, l1_l2")
            return names[value]
        return value

    @field_validator("l1", "l2")
    @classmethod
    def _float32(cls, value: float) -> float:
        return float32_factor(value)


Reg = Regularizer | None


NodeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _inputs(value: Any) -> Any:
    """One name may stand for a list of one."""
    return [value] if isinstance(value, str) else value


class LayerSpec(BaseModel):
    """A registered layer type: its arguments, its Keras class and its analysis rule.

    ``name`` and ``inputs`` place the layer in its variant's graph (``models.graph``): left
    out, a layer is named as Keras would name it and takes the previous layer's output.
    """

    model_config = ConfigDict(extra="forbid")
    if TYPE_CHECKING:  # every registered subclass narrows it to its own Literal
        type: str
    name: NodeName | None = None
    inputs: (
        Annotated[list[NodeName], BeforeValidator(_inputs), Field(min_length=1, max_length=64)]
        | None
    ) = None

    def infer(self, walker: Walker) -> Step:
        """Return (output shape, params, trainable params, flops); elementwise by default."""
        return walker.shape, 0, 0, 0


# Every registered layer type by its ``type`` (the name of its Keras class), in the order
# they are registered: the discriminated union ``Layer`` and every error message list them so.
LAYER_TYPES: dict[str, type[LayerSpec]] = {}
_SEALED = False  # True once the Layer union is built from LAYER_TYPES
_T = TypeVar("_T", bound=LayerSpec)


def register(cls: type[_T]) -> type[_T]:
    """Register a layer type (a class decorator); its ``type`` default is its name."""
    name = cls.model_fields["type"].default
    if not isinstance(name, str) or name in LAYER_TYPES:
        raise AssertionError(f"layer type {name!r} has no name or is registered twice")
    if _SEALED:
        raise AssertionError(f"layer type {name!r} registered after the Layer union was built")
    LAYER_TYPES[name] = cls
    return cls


# The registered layer types, imported in the order the registry lists them (every error
# message and the OpenAPI union follow it): the core layers, augmentation, then merges.
# isort: off
from models import layers as _layers  # noqa: E402,F401
from models import augmentation as _augmentation  # noqa: E402,F401
from models import merge as _merge  # noqa: E402,F401
# isort: on

if TYPE_CHECKING:
    Layer = LayerSpec
else:  # the discriminated union of every registered type, built from the registry
    Layer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007
_SEALED = True


def _input_shape(value: Any) -> Any:
    """Check an input shape: 1 to 3 dimensions, each 1..4096."""
    if (
        not isinstance(value, list | tuple)
        or not 1 <= len(value) <= 3
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        raise ValueError(f"must be a list of 1 to 3 integers, got {value!r}")
    if any(not 1 <= v <= 4096 for v in value):
        raise ValueError(f"each dimension must be between 1 and 4096, got {list(value)}")
    return tuple(value)


class Variant(BaseModel):
    """One architecture to compare: native ``layers`` or a Sequential's ``keras_config``."""

    model_config = ConfigDict(extra="forbid")
    # Not dots alone: a name is a directory in exports (TensorBoard runs), and "." or ".."
    # would be this one or its parent.
    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
    )
    input_shape: Annotated[tuple[int, ...], BeforeValidator(_input_shape)] | None = None
    layers: list[Layer] | None = Field(default=None, min_length=1, max_length=MAX_LAYERS)
    keras_config: dict[str, Any] | None = None
    # The layer whose output is the model's (default: the last); every other layer reaches it.
    output: NodeName | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Any:
        if (self.layers is None) == (self.keras_config is None):
            raise ValueError(_ONE_OF)
        return self


_ONE_OF = "give exactly one of layers or keras_config"


def _clean(error: Any, data: dict[str, Any]) -> ErrorDict:
    """Turn one pydantic error into a located message without discriminator tags."""
    loc: list[str | int] = list(error["loc"])
    msg: str = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    tag: str | None = None
    if len(loc) >= 3 and loc[0] == "layers" and isinstance(loc[1], int) and loc[2] in LAYER_TYPES:
        tag = str(loc.pop(2))
    allowed = ", ".join(LAYER_TYPES)
    if kind == "union_tag_invalid":
        loc.append("type")
        msg = (
            f"unknown layer type {error['ctx']['tag']!r}; allowed: {allowed} (other Keras "
            f"layers are not supported yet; {CUSTOM_REFUSED})"
        )
    elif kind == "union_tag_not_found":
        loc.append("type")
        msg = f"the layer has no 'type'; allowed: {allowed}"
    elif kind == "extra_forbidden":
        model: type[BaseModel] = LAYER_TYPES[tag] if tag else Variant
        names = ", ".join(n for n in model.model_fields if n != "type")
        what = f"for {tag}" if tag else "for a variant"
        msg = f"unknown argument {loc[-1]!r} {what}; allowed: {names}"
    elif kind == "missing":
        msg = f"missing required argument {loc[-1]!r}" + (f" for {tag}" if tag else "")
    elif kind == "literal_error":
        msg = f"{error['input']!r} is not allowed; expected {error['ctx']['expected']}"
    elif kind == "string_pattern_mismatch":
        msg = "may hold only letters, digits, '_', '.' and '-', and not only dots"
    elif msg == _ONE_OF and not loc:
        both = data.get("layers") is not None
        loc = ["keras_config"] if both else ["layers"]
        msg = _ONE_OF + (", not both" if both else "")
    return err(loc, msg)


def parse_variant(data: dict[str, Any]) -> Variant:
    """Validate a variant (keras_config included) or raise ``SpecError`` with clean locations."""
    if not isinstance(data, dict):
        raise SpecError([err([], "a variant must be a JSON object")])
    try:
        variant = Variant.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_clean(e, data) for e in exc.errors()) from None
    if variant.keras_config is not None:
        from models.keras_import import layers_from_keras_config  # here: keras_import imports spec

        layers_from_keras_config(variant.keras_config)
    return variant
