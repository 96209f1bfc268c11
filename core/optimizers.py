"""The optimizers a comparison may name: one table, read by the spec's validation (through
its ``Optimizer`` literal, which a test keeps equal to these keys) and by the worker, which
compiles ``keras.optimizers.<class name>``; and which of the spec's optimizer arguments each
takes (``OPTIMIZER_ARGUMENTS``, from the Keras constructors' signatures).

A closed table: a user's name is looked up here, never handed to Keras to resolve.
"""

from __future__ import annotations

__all__ = ["COMMON_ARGUMENTS", "OPTIMIZERS", "OPTIMIZER_ARGUMENTS", "takes"]

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
