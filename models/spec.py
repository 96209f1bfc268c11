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

import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.errors import CUSTOM_REFUSED, ErrorDict, SpecError, err
from models.shapes import Bad, Step, Walker, need_rank, windows

__all__ = [
    "ACTIVATIONS",
    "AUGMENTATION_TYPES",
    "INITIALIZERS",
    "LAYER_TYPES",
    "MAX_LAYERS",
    "VECTOR_INITIALIZERS",
    "ActivationName",
    "ActivationSpec",
    "AveragePooling1DSpec",
    "AveragePooling2DSpec",
    "BatchNormalizationSpec",
    "Conv1DSpec",
    "Conv2DSpec",
    "DenseSpec",
    "DepthwiseConv2DSpec",
    "DropoutSpec",
    "FlattenSpec",
    "GlobalAveragePooling1DSpec",
    "GlobalAveragePooling2DSpec",
    "GlobalMaxPooling1DSpec",
    "GlobalMaxPooling2DSpec",
    "InitializerName",
    "Layer",
    "LayerNormalizationSpec",
    "LayerSpec",
    "LeakyReLUSpec",
    "MaxPooling1DSpec",
    "MaxPooling2DSpec",
    "RandomContrastSpec",
    "RandomCropSpec",
    "RandomFlipSpec",
    "RandomRotationSpec",
    "RandomTranslationSpec",
    "RandomZoomSpec",
    "ReLUSpec",
    "Regularizer",
    "RescalingSpec",
    "ReshapeSpec",
    "SeparableConv2DSpec",
    "SpatialDropout2DSpec",
    "Variant",
    "VectorInitializerName",
    "ZeroPadding2DSpec",
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
_T = TypeVar("_T", bound=LayerSpec)


def register(cls: type[_T]) -> type[_T]:
    """Register a layer type (a class decorator); its ``type`` default is its name."""
    name = cls.model_fields["type"].default
    if not isinstance(name, str) or name in LAYER_TYPES:
        raise AssertionError(f"layer type {name!r} has no name or is registered twice")
    LAYER_TYPES[name] = cls
    return cls


class _Conv(LayerSpec):
    strides: Pair = (1, 1)
    padding: Literal["valid", "same"] = "valid"
    dilation_rate: Pair = (1, 1)
    activation: Activation = "linear"
    use_bias: bool = True
    bias_initializer: VectorInitializerName = "zeros"
    bias_regularizer: Reg = None

    @field_validator("dilation_rate")
    @classmethod
    def _strides_or_dilation(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        strides = info.data.get("strides")
        if strides is not None and max(strides) > 1 and max(value) > 1:
            raise ValueError("Keras does not support strides > 1 together with dilation_rate > 1")
        return value

    def weights(self, cin: int, kk: int, pos: int) -> tuple[int, int, int]:
        """Return (output channels, weights without bias, flops) for the 2-D convolution."""
        raise NotImplementedError

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        need_rank(self.type, sh, 3, "height, width, channels")
        kernel_size: tuple[int, ...] = getattr(self, "kernel_size")  # noqa: B009 - every subclass has one
        hw = windows(sh, kernel_size, self.strides, self.dilation_rate, self.padding, "kernel_size")
        cin, kk, pos = sh[-1], math.prod(kernel_size), math.prod(hw)
        walker.field_after(kernel_size, self.strides, self.dilation_rate)
        out, w, fl = self.weights(cin, kk, pos)
        p = w + (out if self.use_bias else 0)
        return (*hw, out), p, p, fl


@register
class Conv2DSpec(_Conv):
    """keras.layers.Conv2D (channels_last, groups=1)."""

    type: Literal["Conv2D"] = "Conv2D"
    filters: Filters
    kernel_size: Pair
    kernel_initializer: InitializerName = "glorot_uniform"
    kernel_regularizer: Reg = None

    def weights(self, cin: int, kk: int, pos: int) -> tuple[int, int, int]:
        return self.filters, kk * cin * self.filters, pos * self.filters * kk * cin


@register
class SeparableConv2DSpec(_Conv):
    """keras.layers.SeparableConv2D."""

    type: Literal["SeparableConv2D"] = "SeparableConv2D"
    filters: Filters
    kernel_size: Pair
    depth_multiplier: Multiplier = 1
    depthwise_initializer: InitializerName = "glorot_uniform"
    pointwise_initializer: InitializerName = "glorot_uniform"
    depthwise_regularizer: Reg = None
    pointwise_regularizer: Reg = None

    def weights(self, cin: int, kk: int, pos: int) -> tuple[int, int, int]:
        mid = cin * self.depth_multiplier
        out = self.filters
        return out, kk * mid + mid * out, pos * (mid * kk + mid * out)


@register
class DepthwiseConv2DSpec(_Conv):
    """keras.layers.DepthwiseConv2D."""

    type: Literal["DepthwiseConv2D"] = "DepthwiseConv2D"
    kernel_size: Pair
    depth_multiplier: Multiplier = 1
    depthwise_initializer: InitializerName = "glorot_uniform"
    depthwise_regularizer: Reg = None

    def weights(self, cin: int, kk: int, pos: int) -> tuple[int, int, int]:
        out = cin * self.depth_multiplier
        return out, kk * out, pos * out * kk


@register
class Conv1DSpec(LayerSpec):
    """keras.layers.Conv1D (channels_last, groups=1)."""

    type: Literal["Conv1D"] = "Conv1D"
    filters: Filters
    kernel_size: Single
    strides: Single = (1,)
    padding: Literal["valid", "same", "causal"] = "valid"
    dilation_rate: Single = (1,)
    activation: Activation = "linear"
    use_bias: bool = True
    kernel_initializer: InitializerName = "glorot_uniform"
    bias_initializer: VectorInitializerName = "zeros"
    kernel_regularizer: Reg = None
    bias_regularizer: Reg = None

    _strides_or_dilation = _Conv._strides_or_dilation

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        need_rank(self.type, sh, 2, "steps, channels")
        (n,) = windows(
            sh, self.kernel_size, self.strides, self.dilation_rate, self.padding, "kernel_size"
        )
        walker.field_after(self.kernel_size, self.strides, self.dilation_rate)
        k, cin = self.kernel_size[0], sh[-1]
        p = k * cin * self.filters + (self.filters if self.use_bias else 0)
        return (n, self.filters), p, p, n * self.filters * k * cin


def _pool(
    kind: str, walker: Walker, size: tuple[int, ...], strides: tuple[int, ...] | None, padding: str
) -> Step:
    """The rule of a (1-D or 2-D) max or average pooling layer."""
    sh, rank = walker.shape, len(size) + 1
    need_rank(kind, sh, rank, "height, width, channels" if rank == 3 else "steps, channels")
    strides = strides or size
    ones = (1,) * len(size)
    spatial = windows(sh, size, strides, ones, padding, "pool_size")
    walker.field_after(size, strides, ones)
    return (*spatial, sh[-1]), 0, 0, 0


def _global_pool(kind: str, walker: Walker, rank: int, keepdims: bool) -> Step:
    """The rule of a global pooling layer over a rank-``rank`` input."""
    sh = walker.shape
    need_rank(kind, sh, rank, "height, width, channels" if rank == 3 else "steps, channels")
    walker.mix()
    return ((1,) * (rank - 1) + (sh[-1],) if keepdims else (sh[-1],)), 0, 0, 0


class _Pool(LayerSpec):
    """A 1-D or 2-D max or average pooling layer; its subclass declares the fields (their
    order is the schema's)."""

    if TYPE_CHECKING:
        pool_size: tuple[int, ...]
        strides: tuple[int, ...] | None
        padding: str

    @model_validator(mode="after")
    def _default_strides(self) -> Any:
        if self.strides is None:
            self.strides = self.pool_size  # Keras's rule; explicit so round trips compare equal
        return self

    def infer(self, walker: Walker) -> Step:
        return _pool(self.type, walker, self.pool_size, self.strides, self.padding)


class _Pool2D(_Pool):
    pool_size: Pair = (2, 2)
    strides: Pair | None = None
    padding: Literal["valid", "same"] = "valid"


@register
class MaxPooling2DSpec(_Pool2D):
    """keras.layers.MaxPooling2D."""

    type: Literal["MaxPooling2D"] = "MaxPooling2D"


@register
class AveragePooling2DSpec(_Pool2D):
    """keras.layers.AveragePooling2D."""

    type: Literal["AveragePooling2D"] = "AveragePooling2D"


class _Pool1D(_Pool):
    pool_size: Single = (2,)
    strides: Single | None = None
    padding: Literal["valid", "same"] = "valid"


@register
class MaxPooling1DSpec(_Pool1D):
    """keras.layers.MaxPooling1D."""

    type: Literal["MaxPooling1D"] = "MaxPooling1D"


@register
class AveragePooling1DSpec(_Pool1D):
    """keras.layers.AveragePooling1D."""

    type: Literal["AveragePooling1D"] = "AveragePooling1D"


class _GlobalPool(LayerSpec):
    # ``type`` is declared here (a str; each subclass narrows it) to stay the first field.
    type: str
    rank: ClassVar[int]  # of the input: 3 (height, width, channels) or 2 (steps, channels)
    keepdims: bool = False

    def infer(self, walker: Walker) -> Step:
        return _global_pool(self.type, walker, self.rank, self.keepdims)


@register
class GlobalAveragePooling2DSpec(_GlobalPool):
    """keras.layers.GlobalAveragePooling2D."""

    type: Literal["GlobalAveragePooling2D"] = "GlobalAveragePooling2D"
    rank = 3


@register
class GlobalMaxPooling2DSpec(_GlobalPool):
    """keras.layers.GlobalMaxPooling2D."""

    type: Literal["GlobalMaxPooling2D"] = "GlobalMaxPooling2D"
    rank = 3


@register
class GlobalAveragePooling1DSpec(_GlobalPool):
    """keras.layers.GlobalAveragePooling1D."""

    type: Literal["GlobalAveragePooling1D"] = "GlobalAveragePooling1D"
    rank = 2


@register
class GlobalMaxPooling1DSpec(_GlobalPool):
    """keras.layers.GlobalMaxPooling1D."""

    type: Literal["GlobalMaxPooling1D"] = "GlobalMaxPooling1D"
    rank = 2


@register
class FlattenSpec(LayerSpec):
    """keras.layers.Flatten."""

    type: Literal["Flatten"] = "Flatten"

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        if len(sh) > 1:
            walker.mix()
        return (math.prod(sh),), 0, 0, 0


@register
class DenseSpec(LayerSpec):
    """keras.layers.Dense (applies to the last axis)."""

    type: Literal["Dense"] = "Dense"
    units: Annotated[int, Field(ge=1, le=100_000)]
    activation: Activation = "linear"
    use_bias: bool = True
    kernel_initializer: InitializerName = "glorot_uniform"
    bias_initializer: VectorInitializerName = "zeros"
    kernel_regularizer: Reg = None
    bias_regularizer: Reg = None

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        p = sh[-1] * self.units + (self.units if self.use_bias else 0)
        return (*sh[:-1], self.units), p, p, math.prod(sh) * self.units


@register
class DropoutSpec(LayerSpec):
    """keras.layers.Dropout."""

    type: Literal["Dropout"] = "Dropout"
    rate: Rate


@register
class SpatialDropout2DSpec(LayerSpec):
    """keras.layers.SpatialDropout2D."""

    type: Literal["SpatialDropout2D"] = "SpatialDropout2D"
    rate: Rate

    def infer(self, walker: Walker) -> Step:
        need_rank(self.type, walker.shape, 3, "height, width, channels")
        return walker.shape, 0, 0, 0


@register
class BatchNormalizationSpec(LayerSpec):
    """keras.layers.BatchNormalization over the last axis."""

    type: Literal["BatchNormalization"] = "BatchNormalization"
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99
    epsilon: Epsilon = 0.001
    center: bool = True
    scale: bool = True
    beta_initializer: VectorInitializerName = "zeros"
    gamma_initializer: VectorInitializerName = "ones"
    moving_mean_initializer: VectorInitializerName = "zeros"
    moving_variance_initializer: VectorInitializerName = "ones"
    beta_regularizer: Reg = None
    gamma_regularizer: Reg = None

    def infer(self, walker: Walker) -> Step:
        c = walker.shape[-1]
        trainable = c * (int(self.center) + int(self.scale))
        return walker.shape, trainable + 2 * c, trainable, 0


@register
class LayerNormalizationSpec(LayerSpec):
    """keras.layers.LayerNormalization over the last axis."""

    type: Literal["LayerNormalization"] = "LayerNormalization"
    epsilon: Epsilon = 0.001
    center: bool = True
    scale: bool = True
    beta_initializer: VectorInitializerName = "zeros"
    gamma_initializer: VectorInitializerName = "ones"
    beta_regularizer: Reg = None
    gamma_regularizer: Reg = None

    def infer(self, walker: Walker) -> Step:
        trainable = walker.shape[-1] * (int(self.center) + int(self.scale))
        return walker.shape, trainable, trainable, 0


@register
class ActivationSpec(LayerSpec):
    """keras.layers.Activation."""

    type: Literal["Activation"] = "Activation"
    activation: Activation


@register
class ReLUSpec(LayerSpec):
    """keras.layers.ReLU."""

    type: Literal["ReLU"] = "ReLU"
    max_value: Annotated[float, Field(ge=0.0, le=1e6)] | None = None
    negative_slope: Annotated[float, Field(ge=0.0, le=1e3)] = 0.0
    threshold: Annotated[float, Field(ge=0.0, le=1e6)] = 0.0


@register
class LeakyReLUSpec(LayerSpec):
    """keras.layers.LeakyReLU."""

    type: Literal["LeakyReLU"] = "LeakyReLU"
    negative_slope: Annotated[float, Field(ge=0.0, le=1e3)] = 0.3


def _padding_2d(value: Any) -> Any:
    """Normalise ZeroPadding2D's int / (h, w) / ((top, bottom), (left, right)) forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if isinstance(value, list | tuple) and len(value) == 2:
        value = [[v, v] if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(p, list | tuple) and len(p) == 2 for p in value)
        and all(isinstance(v, int) and not isinstance(v, bool) for p in value for v in p)
    )
    if not ok:
        raise ValueError(
            "must be an integer, a list of 2 integers or [[top, bottom], [left, right]]"
        )
    for p in value:
        for v in p:
            if not 0 <= v <= 64:
                raise ValueError(f"must be between 0 and 64, got {v}")
    return tuple(tuple(p) for p in value)


@register
class ZeroPadding2DSpec(LayerSpec):
    """keras.layers.ZeroPadding2D."""

    type: Literal["ZeroPadding2D"] = "ZeroPadding2D"
    padding: Annotated[tuple[tuple[int, int], tuple[int, int]], BeforeValidator(_padding_2d)] = (
        (1, 1),
        (1, 1),
    )

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        need_rank(self.type, sh, 3, "height, width, channels")
        (t, b), (left, r) = self.padding
        return (sh[0] + t + b, sh[1] + left + r, sh[2]), 0, 0, 0


@register
class RescalingSpec(LayerSpec):
    """keras.layers.Rescaling (scalar scale and offset)."""

    type: Literal["Rescaling"] = "Rescaling"
    scale: Finite
    offset: Finite = 0.0


def _target_shape(value: Any) -> Any:
    """Check a Reshape target: 1..4 positive ints, at most one -1."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list | tuple)
        or not 1 <= len(value) <= 4
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        raise ValueError("must be a list of 1 to 4 integers")
    if any(v == 0 or v < -1 or v > 10_000_000 for v in value):
        raise ValueError(f"dimensions must be between 1 and 10,000,000 (or -1), got {list(value)}")
    if list(value).count(-1) > 1:
        raise ValueError("at most one dimension may be -1")
    return tuple(value)


@register
class ReshapeSpec(LayerSpec):
    """keras.layers.Reshape (one dimension may be -1)."""

    type: Literal["Reshape"] = "Reshape"
    target_shape: Annotated[tuple[int, ...], BeforeValidator(_target_shape)]

    def infer(self, walker: Walker) -> Step:
        return walker.reshape(self.target_shape), 0, 0, 0


# --------------------------------------------------------------------------- augmentation
# Keras's image augmentation layers: random in training only, the identity at inference. No
# ``seed`` argument: the worker builds every model right after seeding Keras with the trial's
# seed, so each layer's seed, and the trial, follow from it.

FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["nearest", "bilinear"]


def _factor(lo: float, normalise: bool) -> Callable[[Any], Any]:
    """A factor: a number or a [lower, upper] pair, each within (lo or [lo for 0), 1]; with
    ``normalise`` Keras's own reading of it (a number f is [max(-|f|, lo), |f|], a pair is
    sorted), which its config gives back, so a round trip compares equal."""

    def check(value: Any) -> Any:
        pair = isinstance(value, list | tuple)
        items = list(value) if pair else [value]
        if (pair and len(items) != 2) or any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in items
        ):
            raise ValueError(f"must be a number or a list of 2 numbers, got {value!r}")
        for v in items:
            if not (lo <= v <= 1.0) or (lo < 0 and v == lo):
                low = "above -1" if lo < 0 else "from 0"
                raise ValueError(f"each factor must be {low} up to 1, got {v}")
        if not normalise:
            return tuple(float(v) for v in items) if pair else float(value)
        if pair:
            return tuple(sorted(float(v) for v in items))
        f = abs(float(value))
        return (max(-f, lo), f)

    return check


_SignedFactor = Annotated[float | tuple[float, float], BeforeValidator(_factor(-1.0, False))]


class _Augmentation(LayerSpec):
    def infer(self, walker: Walker) -> Step:
        need_rank(self.type, walker.shape, 3, "height, width, channels")
        return walker.shape, 0, 0, 0


@register
class RandomFlipSpec(_Augmentation):
    """keras.layers.RandomFlip."""

    type: Literal["RandomFlip"] = "RandomFlip"
    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal_and_vertical"


@register
class RandomRotationSpec(_Augmentation):
    """keras.layers.RandomRotation (factor: a fraction of 2 pi)."""

    type: Literal["RandomRotation"] = "RandomRotation"
    factor: Annotated[tuple[float, float], BeforeValidator(_factor(-1.0, True))]
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    fill_value: Finite = 0.0


@register
class RandomTranslationSpec(_Augmentation):
    """keras.layers.RandomTranslation (factors: fractions of the height and width)."""

    type: Literal["RandomTranslation"] = "RandomTranslation"
    height_factor: _SignedFactor
    width_factor: _SignedFactor
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    fill_value: Finite = 0.0


@register
class RandomZoomSpec(_Augmentation):
    """keras.layers.RandomZoom (width_factor null: the height's zoom, keeping the aspect)."""

    type: Literal["RandomZoom"] = "RandomZoom"
    height_factor: _SignedFactor
    width_factor: _SignedFactor | None = None
    fill_mode: FillMode = "reflect"
    interpolation: Interpolation = "bilinear"
    fill_value: Finite = 0.0


@register
class RandomContrastSpec(_Augmentation):
    """keras.layers.RandomContrast (value_range: the range of the pixel values it sees)."""

    type: Literal["RandomContrast"] = "RandomContrast"
    factor: Annotated[tuple[float, float], BeforeValidator(_factor(0.0, True))]
    value_range: tuple[Finite, Finite] = (0.0, 255.0)

    @field_validator("value_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {list(value)}")
        return value


@register
class RandomCropSpec(LayerSpec):
    """keras.layers.RandomCrop: a random height x width window in training.

    Only the window of the whole input is accepted: Keras 3.15's RandomCrop returns its input
    uncropped at inference, not the window its output shape promises, so a model that crops
    trains and then fails to evaluate (tests/unit/worker/test_worker_augmentation.py checks
    that Keras still does this)."""

    type: Literal["RandomCrop"] = "RandomCrop"
    height: Annotated[int, Field(ge=1, le=4096)]
    width: Annotated[int, Field(ge=1, le=4096)]

    def infer(self, walker: Walker) -> Step:
        sh = walker.shape
        need_rank(self.type, sh, 3, "height, width, channels")
        if (self.height, self.width) != sh[:2]:
            raise Bad(
                f"RandomCrop to {self.height}x{self.width} of a {sh[0]}x{sh[1]} input cannot "
                "be evaluated: Keras's RandomCrop returns its whole input at inference, not "
                "the window, so the layers after it would get another shape; only "
                f"height={sh[0]}, width={sh[1]} is accepted",
                "height" if self.height != sh[0] else "width",
            )
        return sh, 0, 0, 0


AUGMENTATION_TYPES = frozenset(
    {"RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
     "RandomCrop"}
)  # fmt: skip
"""The augmentation layer types: random in training only (the CKA probe leaves them out)."""

from models import merge as _merge  # noqa: E402,F401 - registers the merge layer types

if TYPE_CHECKING:
    Layer = LayerSpec
else:  # the discriminated union of every registered type, built from the registry
    Layer = Annotated[Union[tuple(LAYER_TYPES.values())], Field(discriminator="type")]  # noqa: UP007


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
