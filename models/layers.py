"""The registered layer types other than augmentation and merges: convolutions, pooling,
dense, dropout, normalisation, activations, padding, rescaling and reshaping.

Each class is the spec of one ``keras.layers`` class (``type`` is its name, the fields are
Keras's own argument names, each bounded), registered in ``models.spec``'s registry; its
``infer`` gives the output shape, parameters and FLOPs for ``models.analysis``. ``models.spec``
imports this module first, then ``models.augmentation`` and ``models.merge``, so the registry's
order (which every error message and the OpenAPI union list) is the order written here.
"""

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.shapes import Step, Walker, need_rank, windows
from models.spec import (
    Activation,
    Epsilon,
    Filters,
    Finite,
    InitializerName,
    LayerSpec,
    Multiplier,
    Pair,
    Rate,
    Reg,
    Single,
    VectorInitializerName,
    register,
)

__all__ = [
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
    "LayerNormalizationSpec",
    "LeakyReLUSpec",
    "MaxPooling1DSpec",
    "MaxPooling2DSpec",
    "ReLUSpec",
    "RescalingSpec",
    "ReshapeSpec",
    "SeparableConv2DSpec",
    "SpatialDropout2DSpec",
    "ZeroPadding2DSpec",
]


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
