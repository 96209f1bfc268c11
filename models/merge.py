"""The merge layer types: the layers of a graph that take several inputs.

Registered in the same registry as every other layer type (``models.spec`` imports this
module before it builds the ``Layer`` union). A merge's rule is ``merge`` (the shapes of its
inputs, in order, to a ``Step``) instead of ``infer``, which takes one input.

Shapes follow Keras 3's ``Merge`` and ``Concatenate``: element-wise merges take inputs of
one rank whose dimensions are equal or 1 (broadcast, as in a squeeze-and-excitation block's
``(8, 8, 32) * (1, 1, 32)``); ``Concatenate`` takes inputs equal on every axis but ``axis``.
FLOPs count the element-wise work: ``n - 1`` operations per output value for ``n`` inputs,
``n`` for ``Average`` (its division); a concatenation copies and counts 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from models.shapes import Bad, Step, Walker, fmt
from models.spec import LAYER_TYPES, LayerSpec, register

__all__ = ["MERGE_TYPES", "ConcatenateSpec", "MergeSpec", "is_merge"]


class MergeSpec(LayerSpec):
    """A layer of several inputs (at least ``min_inputs``, at most ``max_inputs``)."""

    min_inputs: ClassVar[int] = 2
    max_inputs: ClassVar[int | None] = None
    extra_flop: ClassVar[int] = 0  # per output value, besides the n - 1 pairwise operations

    def infer(self, walker: Walker) -> Step:
        raise Bad(f"{self.type} merges several inputs: give it 'inputs' with two or more names")

    def merge(self, shapes: Sequence[tuple[int, ...]], names: Sequence[str]) -> Step:
        """The output shape (broadcast, as Keras does) and the element-wise FLOPs."""
        first = shapes[0]
        out = list(first)
        for shape, name in zip(shapes[1:], names[1:], strict=True):
            if len(shape) != len(first):
                raise Bad(self._misfit(shapes, names, first, shape, name), "inputs")
            for ax, (a, b) in enumerate(zip(out, shape, strict=True)):
                if a != b and 1 not in (a, b):
                    raise Bad(self._misfit(shapes, names, first, shape, name), "inputs")
                out[ax] = max(a, b)
        flops = math.prod(out) * (len(shapes) - 1 + self.extra_flop)
        return tuple(out), 0, 0, flops

    def _misfit(
        self,
        shapes: Sequence[tuple[int, ...]],
        names: Sequence[str],
        first: tuple[int, ...],
        shape: tuple[int, ...],
        name: str,
    ) -> str:
        return (
            f"{self.type} needs inputs of one shape (or of size 1 where they differ) but "
            f"{names[0]!r} gives {fmt(first)} and {name!r} gives {fmt(shape)}"
        )


@register
class AddSpec(MergeSpec):
    """keras.layers.Add."""

    type: Literal["Add"] = "Add"


@register
class SubtractSpec(MergeSpec):
    """keras.layers.Subtract (exactly two inputs: the first minus the second)."""

    type: Literal["Subtract"] = "Subtract"
    max_inputs: ClassVar[int | None] = 2


@register
class MultiplySpec(MergeSpec):
    """keras.layers.Multiply."""

    type: Literal["Multiply"] = "Multiply"


@register
class AverageSpec(MergeSpec):
    """keras.layers.Average."""

    type: Literal["Average"] = "Average"
    extra_flop: ClassVar[int] = 1


@register
class MaximumSpec(MergeSpec):
    """keras.layers.Maximum."""

    type: Literal["Maximum"] = "Maximum"


@register
class MinimumSpec(MergeSpec):
    """keras.layers.Minimum."""

    type: Literal["Minimum"] = "Minimum"


@register
class ConcatenateSpec(MergeSpec):
    """keras.layers.Concatenate along ``axis`` (Keras's numbering: 0 is the batch axis)."""

    type: Literal["Concatenate"] = "Concatenate"
    axis: Annotated[int, Field(ge=-4, le=4)] = -1

    def merge(self, shapes: Sequence[tuple[int, ...]], names: Sequence[str]) -> Step:
        first = shapes[0]
        rank = len(first) + 1  # with the batch axis
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise Bad(
                f"axis {self.axis} is not a feature axis of inputs of shape {fmt(first)}"
                f" (use 1 to {rank - 1}, or -1 for the last)",
                "axis",
            )
        total = 0
        for shape, name in zip(shapes, names, strict=True):
            fits = len(shape) == len(first) and all(
                a == b for ax, (a, b) in enumerate(zip(shape, first, strict=True)) if ax != axis - 1
            )
            if not fits:
                raise Bad(
                    f"Concatenate on axis {self.axis} needs inputs equal on every other axis but"
                    f" {names[0]!r} gives {fmt(first)} and {name!r} gives {fmt(shape)}",
                    "inputs",
                )
            total += shape[axis - 1]
        out = list(first)
        out[axis - 1] = total
        return tuple(out), 0, 0, 0


MERGE_TYPES: frozenset[str] = frozenset(
    name for name, cls in LAYER_TYPES.items() if issubclass(cls, MergeSpec)
)


def is_merge(layer: LayerSpec) -> bool:
    """Whether ``layer`` takes several inputs."""
    return isinstance(layer, MergeSpec)
