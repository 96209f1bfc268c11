"""The architecture language: declarative Keras Sequential specs, their import and analysis.

Importing this package never loads TensorFlow; ``build_model`` (in ``models.builder``) is
loaded on first use through ``models.build_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# First: models.spec imports every module that registers a layer type (models.layers,
# models.augmentation, models.merge) in its order and then builds the ``Layer`` union; a
# registering module imported before it (models.graph imports models.merge) would be half-made
# when the union is built, and its types left out of it.
from models import spec as _spec  # noqa: F401
from models.analysis import Analysis, LayerAnalysis, Limits, analyze, analyze_variant
from models.errors import SpecError
from models.keras_import import layers_from_keras_config
from models.spec import LAYER_TYPES, Layer, Variant, parse_variant

if TYPE_CHECKING:
    from models.builder import build_model

__all__ = [
    "LAYER_TYPES",
    "Analysis",
    "Layer",
    "LayerAnalysis",
    "Limits",
    "SpecError",
    "Variant",
    "analyze",
    "analyze_variant",
    "build_model",
    "layers_from_keras_config",
    "parse_variant",
]


def __getattr__(name: str) -> Any:
    """Load ``build_model`` (and with it Keras) only when it is asked for."""
    if name == "build_model":
        from models.builder import build_model

        return build_model
    raise AttributeError(f"module 'models' has no attribute {name!r}")
