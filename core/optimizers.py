"""The optimizers a comparison may name: one table, read by the spec's validation (through
its ``Optimizer`` literal, which a test keeps equal to these keys) and by the worker, which
compiles ``keras.optimizers.<class name>``.

A closed table: a user's name is looked up here, never handed to Keras to resolve.
"""

from __future__ import annotations

__all__ = ["OPTIMIZERS"]

OPTIMIZERS: dict[str, str] = {
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "nadam": "Nadam",
}
"""Spec name -> ``keras.optimizers`` class name."""
