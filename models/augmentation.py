"""Keras's image augmentation layers: random in training only, the identity at inference.

Registered in the same registry as every other layer type (``models.spec`` imports this module
before it builds the ``Layer`` union, and before ``models.merge``, so the registry's order, which
every error message lists, is unchanged). No ``seed`` argument: the worker builds every model right
after seeding Keras with the trial's seed, so each layer's seed, and the trial, follow from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from models.shapes import Bad, Step, Walker, need_rank
from models.spec import Finite, LayerSpec, register

__all__ = [
    "AUGMENTATION_TYPES",
    "RandomContrastSpec",
    "RandomCropSpec",
    "RandomFlipSpec",
    "RandomRotationSpec",
    "RandomTranslationSpec",
    "RandomZoomSpec",
]


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
