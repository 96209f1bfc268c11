"""The ``tuning`` block of a comparison: which training knobs are searched, over what, how often
(a flat module of ``core``, not in ``core.tuning``, so that ``core.spec`` can hold it:
``core.store`` imports ``core.spec`` and sits below ``core.tuning``).

A space entry is ``{"log_uniform": [lo, hi]}``, ``{"uniform": [lo, hi]}`` or ``{"choice":
[...]}``. The knobs are the training settings that decide how well an architecture trains, not
what it is: ``learning_rate``, ``weight_decay``, ``momentum``, ``batch_size`` (a choice of
integers) and ``dropout.<layer name>`` (the rate of a named Dropout layer, in every variant
that has it). Every variant gets the same number of tuning trials from the same space.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import ErrorItem

__all__ = [
    "KNOBS",
    "Choice",
    "LogUniform",
    "SpaceEntry",
    "TuningSpec",
    "Uniform",
    "grid_size",
    "knob_kind",
    "tuning_errors",
]

KNOBS = ("learning_rate", "weight_decay", "momentum", "batch_size")
"""The training knobs a space may search besides ``dropout.<layer name>``."""

_DROPOUT = re.compile(r"^dropout\.[A-Za-z0-9_.-]{1,64}$")
MOMENTUM_OPTIMIZERS = frozenset({"sgd", "rmsprop"})
MAX_CHOICES = 64
MAX_TRIALS = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogUniform(_Strict):
    """A positive number drawn on a log scale between ``lo`` and ``hi`` (the learning rate)."""

    log_uniform: tuple[Annotated[float, Field(gt=0.0)], Annotated[float, Field(gt=0.0)]]

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        lo, hi = self.log_uniform
        if not lo < hi:
            raise ValueError(f"log_uniform needs lo < hi, got [{lo}, {hi}]")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        return self.log_uniform


class Uniform(_Strict):
    """A number drawn uniformly between ``lo`` and ``hi``."""

    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        lo, hi = self.uniform
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"uniform needs finite lo < hi, got [{lo}, {hi}]")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        return self.uniform


class Choice(_Strict):
    """One of a list of values (numbers, strings or booleans), each equally likely a priori."""

    choice: Annotated[list[bool | int | float | str], Field(min_length=1, max_length=MAX_CHOICES)]

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        if len(set(map(repr, self.choice))) != len(self.choice):
            raise ValueError("choice has a value twice")
        return self


SpaceEntry = LogUniform | Uniform | Choice


def knob_kind(name: str) -> str | None:
    """``"dropout"`` for ``dropout.<layer>``, the name itself for a known knob, else None."""
    if name in KNOBS:
        return name
    if _DROPOUT.match(name):
        return "dropout"
    return None


def _range_problem(name: str, entry: SpaceEntry) -> str | None:
    """Why ``entry`` cannot be the range of knob ``name`` (None when it can)."""
    kind = knob_kind(name)
    if kind is None:
        return (
            f"unknown knob {name!r}: the space may search {', '.join(KNOBS)} and "
            "'dropout.<layer name>'"
        )
    values: list[Any] = list(entry.choice) if isinstance(entry, Choice) else list(entry.bounds)
    if kind == "batch_size":
        if not isinstance(entry, Choice) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in values
        ):
            return 'batch_size is searched as {"choice": [integers from 1 to 65536]}'
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return f"{name} takes numbers"
    low, high = min(values), max(values)
    limits = {
        "learning_rate": (0.0, 10.0, False),
        "weight_decay": (0.0, 1.0, True),
        "momentum": (0.0, 1.0, True),
        "dropout": (0.0, 1.0, True),
    }[kind]
    floor, ceiling, floor_ok = limits
    if (low < floor or (low == floor and not floor_ok)) or high >= ceiling:
        bracket = "[" if floor_ok else "("
        return f"{name} must lie in {bracket}{floor:g}, {ceiling:g}), got {low:g} to {high:g}"
    return None


class TuningSpec(_Strict):
    """The tuning stage: ``trials`` configurations per variant drawn from ``space`` by
    ``sampler``, each trained for ``epochs`` (fewer than training's) on the training split
    and scored by ``metric`` on the validation split; the best configuration of each variant
    then trains over the comparison's seeds."""

    space: Annotated[dict[str, SpaceEntry], Field(min_length=1, max_length=16)]
    trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 16
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    epochs: Annotated[int | None, Field(ge=1)] = None
    pruner: Literal["median", "successive_halving"] | None = None

    @property
    def maximize(self) -> bool:
        """Whether a higher ``metric`` is better."""
        return self.metric != "val_loss"


def grid_size(spec: TuningSpec) -> int:
    """How many configurations the grid of a choice-only space holds."""
    return math.prod(len(e.choice) for e in spec.space.values() if isinstance(e, Choice))


def tuning_errors(
    spec: TuningSpec,
    *,
    training_epochs: int,
    optimizer: str,
    dropout_layers: set[str],
) -> list[ErrorItem]:
    """Every located problem of a well-formed ``tuning`` block against its comparison: an
    unknown knob or a range outside the knob's, a grid that is not a grid or smaller than the
    budget, tuning epochs not fewer than training's, momentum for an optimizer without it, a
    dropout rate of a layer no variant names. Locations start at ``["tuning"]``."""
    errors: list[ErrorItem] = []
    for name, entry in spec.space.items():
        problem = _range_problem(name, entry)
        if problem is None and name == "momentum" and optimizer not in MOMENTUM_OPTIMIZERS:
            problem = f"the optimizer {optimizer!r} has no momentum (only sgd and rmsprop do)"
        if problem is None and knob_kind(name) == "dropout":
            layer = name.removeprefix("dropout.")
            if layer not in dropout_layers:
                problem = f"no variant has a Dropout layer named {layer!r}"
        if problem:
            errors.append({"loc": ["tuning", "space", name], "msg": problem})
    if spec.sampler == "grid":
        for name, entry in spec.space.items():
            if not isinstance(entry, Choice):
                errors.append(
                    {
                        "loc": ["tuning", "space", name],
                        "msg": "the grid sampler needs every knob as a choice; use tpe or "
                        "random for a range, or list the values",
                    }
                )
        if all(isinstance(e, Choice) for e in spec.space.values()) and spec.trials > grid_size(
            spec
        ):
            errors.append(
                {
                    "loc": ["tuning", "trials"],
                    "msg": f"{spec.trials} trials but the grid has only {grid_size(spec)} "
                    "configurations: lower trials or widen the grid",
                }
            )
    if spec.epochs is not None and (
        spec.epochs > training_epochs or (spec.epochs == training_epochs and training_epochs > 1)
    ):
        errors.append(
            {
                "loc": ["tuning", "epochs"],
                "msg": f"tuning epochs ({spec.epochs}) must be fewer than training's "
                f"({training_epochs}), or left out to use training's",
            }
        )
    return errors
