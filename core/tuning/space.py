"""The ``tuning`` block of a comparison, as ``core.tuning`` names it.

The models live in the flat module ``core.tuning_space``, because ``core.spec`` (which
``core.store`` imports) holds a comparison's ``tuning`` and must not import a package that
sits above ``core.store``; this module is their name inside the tuning package.
"""

from __future__ import annotations

from core.tuning_space import (
    KNOBS,
    MAX_CHOICES,
    MAX_TRIALS,
    MOMENTUM_OPTIMIZERS,
    Choice,
    LogUniform,
    SpaceEntry,
    TuningSpec,
    Uniform,
    grid_size,
    knob_kind,
    tuning_errors,
)

__all__ = [
    "KNOBS",
    "MAX_CHOICES",
    "MAX_TRIALS",
    "MOMENTUM_OPTIMIZERS",
    "Choice",
    "LogUniform",
    "SpaceEntry",
    "TuningSpec",
    "Uniform",
    "grid_size",
    "knob_kind",
    "tuning_errors",
]
