"""The shape walk the layer rules of ``models.spec`` share: tensor shape and receptive field.

Each registered layer type's ``infer`` (in ``models.spec``) takes a ``Walker`` and returns a
``Step``; ``models.analysis.analyze`` drives the walk and collects the steps. Nothing here
knows a layer type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Bad", "Step", "Walker", "fmt", "need_rank", "windows"]

# (output shape, params, trainable params, flops) of one layer
Step = tuple[tuple[int, ...], int, int, int]


class Bad(Exception):
    """A shape problem in one layer: (argument or None, message)."""

    def __init__(self, msg: str, arg: str | None = None) -> None:
        super().__init__(msg)
        self.arg = arg
        self.msg = msg


def _x(dims: Sequence[int]) -> str:
    return "x".join(str(d) for d in dims)


def fmt(shape: tuple[int, ...]) -> str:
    """A shape as Keras prints it, with the batch dimension."""
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def need_rank(kind: str, shape: tuple[int, ...], rank: int, what: str) -> None:
    """Raise ``Bad`` unless ``shape`` has ``rank`` dimensions (layer type ``kind``)."""
    if len(shape) == rank:
        return
    hint = ""
    if rank == 3 and len(shape) == 2:
        hint = f"; for one-channel images give input_shape {[*shape, 1]}"
    elif rank == 3 and len(shape) == 4 - 3:
        hint = "; it gets a flat vector (add Reshape first)"
    raise Bad(f"{kind} needs a {rank + 1}-D input (batch, {what}) but gets {fmt(shape)}{hint}")


def _window(n: int, k: int, stride: int, dilation: int, padding: str, arg: str, i: int) -> int:
    """Output length of a sliding window along one axis."""
    eff = dilation * (k - 1) + 1
    if padding == "valid":
        if eff > n:
            raise Bad(f"{_axis(arg, i)} {eff} is larger than its input {n}", arg)
        return (n - eff) // stride + 1
    return (n - 1) // stride + 1  # "same" and "causal"


def _axis(arg: str, i: int) -> str:
    return f"{arg.replace('_', ' ')} (axis {i})"


def windows(
    shape: tuple[int, ...], size: tuple[int, ...], strides: tuple[int, ...],
    dilation: tuple[int, ...], padding: str, arg: str,
) -> tuple[int, ...]:  # fmt: skip
    """Output lengths of a sliding window along every spatial axis of ``shape``."""
    spatial = shape[:-1]
    eff = tuple(d * (k - 1) + 1 for k, d in zip(size, dilation, strict=True))
    if padding == "valid" and any(e > n for e, n in zip(eff, spatial, strict=True)):
        kind = "kernel" if arg == "kernel_size" else "pool"
        raise Bad(
            f"{kind} {_x(eff)} is larger than its input {_x(spatial)}",
            arg,
        )
    return tuple(
        _window(n, k, st, d, padding, arg, i)
        for i, (n, k, st, d) in enumerate(zip(spatial, size, strides, dilation, strict=True))
    )


class Walker:
    """Carries the tensor shape and the receptive-field state through the layers.

    The receptive field is kept per spatial axis as the largest field reached at each
    ``jump`` (the product of the strides so far): over a graph, paths with different strides
    grow differently behind a merge, and the largest over all paths is the largest of these.
    ``mixed`` says a path went through a layer that mixes all positions (its field is the
    whole input, and it grows no more)."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input_shape = input_shape
        self.shape = input_shape
        n_spatial = len(input_shape) - 1
        self.fields: list[dict[int, int]] = [{1: 1} for _ in range(n_spatial)]
        self.mixed = False

    @property
    def rf(self) -> list[int] | None:
        """The receptive field per spatial axis (``None`` for a 1-D input)."""
        if not self.fields:
            return None
        grown = [max(f.values()) if f else 0 for f in self.fields]
        if self.mixed:
            return [max(g, n) for g, n in zip(grown, self.input_shape, strict=False)]
        return grown

    def copy(self) -> Walker:
        """A walker in the same state, for one more consumer of this tensor."""
        other = Walker.__new__(Walker)
        other.input_shape, other.shape, other.mixed = self.input_shape, self.shape, self.mixed
        other.fields = [dict(f) for f in self.fields]
        return other

    @classmethod
    def merged(cls, walkers: Sequence[Walker]) -> Walker:
        """The state after a merge: every path of every input (their largest fields)."""
        out = walkers[0].copy()
        for w in walkers[1:]:
            out.mixed = out.mixed or w.mixed
            for mine, theirs in zip(out.fields, w.fields, strict=True):
                for jump, field in theirs.items():
                    mine[jump] = max(mine.get(jump, 0), field)
        return out

    def field_after(
        self, size: tuple[int, ...], strides: tuple[int, ...], dil: tuple[int, ...]
    ) -> None:
        if not self.fields or len(size) != len(self.fields):
            return
        for ax, (k, st, d) in enumerate(zip(size, strides, dil, strict=True)):
            paths = self.fields[ax]
            if len(paths) == 1:  # one path so far (a stack): no merging of jumps
                ((jump, field),) = paths.items()
                self.fields[ax] = {jump * st: field + d * (k - 1) * jump}
                continue
            grown: dict[int, int] = {}
            for jump, field in paths.items():
                key = jump * st
                grown[key] = max(grown.get(key, 0), field + d * (k - 1) * jump)
            self.fields[ax] = grown

    def mix(self) -> None:
        if self.fields:
            self.mixed = True
            self.fields = [{} for _ in self.fields]

    def reshape(self, target: tuple[int, ...]) -> tuple[int, ...]:
        size = math.prod(self.shape)
        known = math.prod(d for d in target if d != -1)
        if -1 in target:
            if size % known:
                raise Bad(
                    f"cannot reshape {fmt(self.shape)} ({size:,} values) into {list(target)}",
                    "target_shape",
                )
            target = tuple(size // known if d == -1 else d for d in target)
        elif known != size:
            raise Bad(
                f"cannot reshape {fmt(self.shape)} ({size:,} values) into {list(target)}"
                f" ({known:,} values)",
                "target_shape",
            )
        self.mix()
        return target
