"""The optimizers a comparison may name: one table, read by the spec's validation (through
its ``Optimizer`` literal, which a test keeps equal to these keys) and by the worker, which
compiles ``keras.optimizers.<class name>``; which of the spec's optimizer arguments each
takes (``OPTIMIZER_ARGUMENTS``, from the Keras constructors' signatures); and the learning
rate a spec gives them (``LearningRate``: a number or one of the schedules here, which the
worker builds as ``keras.optimizers.schedules`` objects).

A closed table: a user's name is looked up here, never handed to Keras to resolve.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

__all__ = [
    "COMMON_ARGUMENTS",
    "OPTIMIZERS",
    "OPTIMIZER_ARGUMENTS",
    "SCHEDULES",
    "CosineSchedule",
    "ExponentialSchedule",
    "LearningRate",
    "LearningRateSchedule",
    "PiecewiseSchedule",
    "WarmupCosineSchedule",
    "takes",
]

OPTIMIZERS: dict[str, str] = {
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "nadam": "Nadam",
}
"""Spec name -> ``keras.optimizers`` class name."""

COMMON_ARGUMENTS = ("weight_decay", "clipnorm", "clipvalue")
"""Arguments of Keras's base optimizer: every optimizer takes them."""

OPTIMIZER_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "adam": ("beta_1", "beta_2", "epsilon"),
    "adamw": ("beta_1", "beta_2", "epsilon"),
    "sgd": ("momentum", "nesterov"),
    "rmsprop": ("momentum", "epsilon"),
    "adagrad": ("epsilon",),
    "nadam": ("beta_1", "beta_2", "epsilon"),
}
"""Spec name -> the spec's optimizer arguments its Keras class takes besides
``COMMON_ARGUMENTS`` (the Keras constructor's keyword of the same name)."""


def takes(optimizer: str) -> tuple[str, ...]:
    """Every optimizer argument of the spec that ``optimizer`` takes."""
    return (*OPTIMIZER_ARGUMENTS[optimizer], *COMMON_ARGUMENTS)


# --------------------------------------------------------------------------- learning rates


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CosineArgs(_Closed):
    initial_learning_rate: Annotated[float, Field(gt=0.0, le=10.0)]
    decay_steps: Annotated[int, Field(ge=1, le=10**9)]
    alpha: Annotated[
        float, Field(ge=0.0, le=1.0, description="The final rate, as a fraction of the initial.")
    ] = 0.0


class CosineSchedule(_CosineArgs):
    """keras.optimizers.schedules.CosineDecay from initial_learning_rate over decay_steps."""

    schedule: Literal["cosine"]


class WarmupCosineSchedule(_CosineArgs):
    """keras.optimizers.schedules.CosineDecay with a linear warm-up: from
    initial_learning_rate to warmup_target over warmup_steps, then a cosine decay from
    warmup_target over decay_steps."""

    schedule: Literal["warmup_cosine"]
    warmup_target: Annotated[float, Field(gt=0.0, le=10.0)]
    warmup_steps: Annotated[int, Field(ge=1, le=10**9)]


class ExponentialSchedule(_Closed):
    """keras.optimizers.schedules.ExponentialDecay: initial_learning_rate x
    decay_rate ^ (step / decay_steps), the exponent an integer when staircase."""

    schedule: Literal["exponential"]
    initial_learning_rate: Annotated[float, Field(gt=0.0, le=10.0)]
    decay_steps: Annotated[int, Field(ge=1, le=10**9)]
    decay_rate: Annotated[float, Field(gt=0.0, le=1.0)]
    staircase: bool = False


class PiecewiseSchedule(_Closed):
    """keras.optimizers.schedules.PiecewiseConstantDecay: values[0] up to step
    boundaries[0], values[1] up to boundaries[1], ..., the last value after the last boundary."""

    schedule: Literal["piecewise"]
    boundaries: Annotated[list[Annotated[int, Field(ge=1, le=10**9)]], Field(min_length=1)]
    values: Annotated[
        list[Annotated[float, Field(gt=0.0, le=10.0)]], Field(min_length=2, max_length=101)
    ]

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(v)):
            raise ValueError("boundaries must be strictly increasing steps")
        return v

    @field_validator("values")
    @classmethod
    def _one_more_value(cls, v: list[float], info: ValidationInfo) -> list[float]:
        boundaries = info.data.get("boundaries")
        if boundaries is not None and len(v) != len(boundaries) + 1:
            raise ValueError(
                f"values needs one more entry than boundaries ({len(boundaries) + 1}), got {len(v)}"
            )
        return v


LearningRateSchedule = (
    CosineSchedule | WarmupCosineSchedule | ExponentialSchedule | PiecewiseSchedule
)
SCHEDULES = {"cosine", "warmup_cosine", "exponential", "piecewise"}


def _known_schedule(v: Any) -> Any:
    if isinstance(v, dict) and v.get("schedule") not in SCHEDULES:
        got = v.get("schedule")
        what = "has no 'schedule'" if got is None else f"has the unknown schedule {got!r}"
        raise ValueError(
            f"a learning rate is a number or a schedule, and this one {what}; the schedules "
            f"are {', '.join(sorted(SCHEDULES))}"
        )
    return v


def _rate_form(v: Any) -> str:
    if isinstance(v, dict):
        return f"lr-{v.get('schedule')}"
    if isinstance(v, BaseModel):
        return f"lr-{getattr(v, 'schedule', None)}"
    return "lr-number"


LearningRate = Annotated[
    Annotated[Annotated[float, Field(gt=0.0, le=10.0)], Tag("lr-number")]
    | Annotated[CosineSchedule, Tag("lr-cosine")]
    | Annotated[WarmupCosineSchedule, Tag("lr-warmup_cosine")]
    | Annotated[ExponentialSchedule, Tag("lr-exponential")]
    | Annotated[PiecewiseSchedule, Tag("lr-piecewise")],
    Discriminator(_rate_form),
    BeforeValidator(_known_schedule),
]
