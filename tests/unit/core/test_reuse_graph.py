"""The reuse key sees a canonical graph: a stack stores exactly as before (its trials keep
their keys, byte for byte), a graph stores the same whatever order it was written in."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from core.config import Settings
from core.datasets import BUILTIN_DATASETS
from core.trials.validation import validate_variant
from tests.support.graphs import GRAPHS, reordered

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")

# The stored layers' sha256 as the code before graphs computed it (each layer dumped with
# every default, no name, no inputs): changing it would make every stored trial unreusable.
PINNED: dict[str, tuple[list[dict[str, Any]], str]] = {
    "cnn": (
        [
            {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "MaxPooling2D", "pool_size": [2, 2]},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
        "4e3e5ab2887ccf69fd18a694b12ecf3bc305832bf0a832d42c2236305d1931f1",
    ),
    "rich": (
        [
            {"type": "Rescaling", "scale": 0.5},
            {"type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same",
             "kernel_regularizer": "l2", "kernel_initializer": "he_normal"},
            {"type": "BatchNormalization", "momentum": 0.9},
            {"type": "ReLU"},
            {"type": "SeparableConv2D", "filters": 8, "kernel_size": 3, "strides": 2},
            {"type": "Dropout", "rate": 0.25},
            {"type": "GlobalAveragePooling2D"},
            {"type": "Dense", "units": 10, "activation": "softmax",
             "bias_regularizer": {"l1": 0.01}},
        ],
        "47291d8fe98386c933ee8a421cd7336981a397267c1f66c0272079a5391bc498",
    ),
}  # fmt: skip


def stored_layers(variant: dict[str, Any]) -> list[dict[str, Any]]:
    stored, _ = validate_variant(
        variant, dataset=BUILTIN_DATASETS["mnist_5k"], settings=SETTINGS, prefix=["v"]
    )
    return stored.layers


def digest(layers: list[dict[str, Any]]) -> str:
    blob = json.dumps(layers, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@pytest.mark.parametrize("name", PINNED)
def test_a_stack_stores_byte_for_byte_as_before(name: str) -> None:
    layers, pinned = PINNED[name]
    assert digest(stored_layers({"name": name, "layers": layers})) == pinned
    named = [
        {**x, "name": n, "inputs": [p]}
        for x, n, p in zip(layers, auto_names(layers), ["input", *auto_names(layers)], strict=False)
    ]
    assert digest(stored_layers({"name": name, "layers": named})) == pinned


def auto_names(layers: list[dict[str, Any]]) -> list[str]:
    from models.graph import default_names
    from models.spec import parse_variant

    return default_names(parse_variant({"name": "x", "layers": layers}).layers or [])


@pytest.mark.parametrize("name", ["inception", "densenet", "squeeze_excitation"])
def test_a_graph_in_another_order_stores_the_same(name: str) -> None:
    a = stored_layers({"name": name, "layers": GRAPHS[name]})
    b = stored_layers({"name": name, "layers": reordered(GRAPHS[name])})
    assert a == b
    assert digest(a) == digest(b)
