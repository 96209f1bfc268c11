"""Matched sizes: resize a variant's widths by one factor until its size meets another's.

"A beats B" is about A and B only when neither is simply larger. ``match_widths`` scales the
width of every layer that has one (``filters`` of convolutions, ``units`` of Dense) by one
common factor, keeping the output layer (it must produce the dataset's classes), and finds the
factor whose parameter or FLOP count lies closest to a target, by the same static analysis
that validates the spec (``models.analysis.analyze``): nothing is built or trained. Counts
grow with the factor (each width does, and with it every count it feeds), so a bisection on
the factor's logarithm finds the crossing, and the widths' rounding is settled by checking the
factors next to it. The answer records the widths used, so the stored spec says what trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from models.analysis import Analysis, analyze
from models.errors import SpecError
from models.spec import Layer

__all__ = ["WIDTH_FIELDS", "Match", "match_widths", "scaled"]

WIDTH_FIELDS = ("filters", "units")
"""The arguments that set a layer's width."""

FACTOR_RANGE = (1.0 / 64.0, 64.0)
_STEPS = 48


@dataclass(frozen=True)
class Match:
    """The factor found, the layers it gives, their count and its gap to the target
    (``count / target - 1``)."""

    factor: float
    layers: list[Layer]
    count: int
    target: int
    by: Literal["params", "flops"]

    @property
    def gap(self) -> float:
        return self.count / self.target - 1.0

    def widths(self) -> list[int | None]:
        """Each layer's width after resizing (None for a layer without one)."""
        return [_width(layer) for layer in self.layers]


def _width(layer: Layer) -> int | None:
    for name in WIDTH_FIELDS:
        value = getattr(layer, name, None)
        if isinstance(value, int):
            return value
    return None


def scaled(layers: Sequence[Layer], factor: float) -> list[Layer]:
    """``layers`` with every width but the output layer's multiplied by ``factor`` (rounded,
    at least 1)."""
    out: list[Layer] = []
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        width = _width(layer)
        if width is None or i == last:
            out.append(layer)
            continue
        field = next(n for n in WIDTH_FIELDS if isinstance(getattr(layer, n, None), int))
        out.append(layer.model_copy(update={field: max(1, round(width * factor))}))
    return out


def match_widths(
    layers: Sequence[Layer],
    input_shape: tuple[int, ...],
    *,
    target: int,
    by: Literal["params", "flops"],
    tolerance: float,
    num_classes: int | None = None,
) -> tuple[Match | None, Match]:
    """The resizing of ``layers`` whose ``by`` count is closest to ``target``: returns (the
    match when within ``tolerance`` of the target, else None; the closest found either way,
    for the message that says how near it came). Raises ``SpecError`` if the layers do not
    analyse at all."""

    def count_at(factor: float) -> tuple[int, list[Layer]]:
        resized = scaled(layers, factor)
        analysis: Analysis = analyze(resized, input_shape, num_classes=num_classes)
        return (analysis.params if by == "params" else analysis.flops), resized

    counts: dict[float, tuple[int, list[Layer]]] = {}

    def cached(factor: float) -> tuple[int, list[Layer]]:
        if factor not in counts:
            try:
                counts[factor] = count_at(factor)
            except SpecError:
                if factor == 1.0:
                    raise
                counts[factor] = (-1, [])  # a width that does not fit (too small a map)
        return counts[factor]

    if not any(_width(layer) for layer in layers[:-1]):
        value, same = cached(1.0)  # nothing to resize: the variant is as it is
        found = Match(1.0, same, value, target, by)
        return (found if abs(found.gap) <= tolerance else None), found
    cached(1.0)
    lo, hi = math.log(FACTOR_RANGE[0]), math.log(FACTOR_RANGE[1])
    for _ in range(_STEPS):
        mid = (lo + hi) / 2.0
        value, _ = cached(math.exp(mid))
        if 0 <= value < target:
            lo = mid
        else:
            hi = mid
    near = _neighbours(layers, math.exp(lo), math.exp(hi))
    candidates = [f for f in (*near, 1.0) if cached(f)[0] > 0]
    gap = _closeness(target, lambda f: cached(f)[0])
    best = min(candidates, key=lambda f: (round(gap(f), 12), abs(math.log(f))))
    value, resized = cached(best)
    found = Match(best, resized, value, target, by)
    return (found if abs(found.gap) <= tolerance else None), found


def _closeness(target: int, count: Callable[[float], int]) -> Callable[[float], float]:
    return lambda f: abs(count(f) / target - 1.0)


def _neighbours(layers: Sequence[Layer], lo: float, hi: float) -> list[float]:
    """Factors around the crossing that land on each nearby rounding of the widest layer."""
    widths = [w for w in (_width(x) for x in layers[:-1]) if w]
    if not widths:
        return [lo, hi]
    widest = max(widths)
    around = {round(widest * lo) + k for k in range(-2, 3)} | {round(widest * hi)}
    return sorted({lo, hi, *(max(1, w) / widest for w in around)})
