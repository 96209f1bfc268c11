"""What differs between two variants' graphs, in words, from an alignment of their layers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison
from models.analysis import analyze
from models.spec import Layer, parse_variant
from models.structure import differences, structure

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")


def variants(name: str) -> dict[str, list[Layer]]:
    spec = json.loads((EXAMPLES / name).read_text())
    return {v["name"]: list(parse_variant(v).layers or []) for v in spec["variants"]}


def texts(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["op"], d["text"]) for d in found]


def test_the_article_pair_in_words() -> None:
    v = variants("article.json")
    found = differences(v["conv128"], v["conv64x2"], "conv128", "conv64x2")
    assert texts(found) == [
        (
            "changed",
            "conv64x2's Conv2D(64) (conv2d) differs from conv128's Conv2D(128) (conv2d):"
            " filters 128 -> 64",
        ),
        ("added", "conv64x2 adds a second Conv2D(64) and a MaxPooling2D(2) before Flatten"),
    ]
    assert found[1]["b"] == ["conv2d_1", "max_pooling2d"]
    assert found[1]["a"] == []


def test_the_fair_article_differs_in_the_convolutions_only() -> None:
    v = variants("article_fair.json")
    found = differences(v["conv128"], v["conv64x2"], "conv128", "conv64x2")
    assert [d["op"] for d in found] == ["changed", "added"]
    assert found[1]["text"] == "conv64x2 adds a second Conv2D(64) before MaxPooling2D(2)"
    assert differences(v["conv128"], v["conv128"]) == []


def test_residual_example_two_skips_and_a_wider_stack_of_similar_size() -> None:
    v = variants("residual.json")
    found = differences(v["plain"], v["residual"], "plain", "residual")
    assert texts(found) == [
        ("added", "residual adds an Add before ReLU"),
        ("added", "residual adds a second Add before ReLU"),
    ]
    params = {
        name: analyze(layers, (28, 28, 1), num_classes=10).params for name, layers in v.items()
    }
    assert params["plain"] == params["residual"]
    assert abs(params["wide"] - params["plain"]) / params["plain"] < 0.02
    wide = differences(v["plain"], v["wide"], "plain", "wide")
    assert [d["op"] for d in wide] == ["changed", "changed", "removed"]
    assert wide[2]["a"] == ["r1", "c3", "c4", "r2"]


def test_removed_and_rewired() -> None:
    a: list[dict[str, Any]] = [
        {"type": "Conv2D", "name": "x", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "Conv2D", "name": "y", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "Add", "name": "m", "inputs": ["x", "y"]},
        {"type": "Flatten"},
    ]
    b = [*a[:2], {"type": "Add", "name": "m", "inputs": ["input", "y"]}, a[3]]
    b[0] = {**b[0], "filters": 3}
    la, lb = (list(parse_variant({"name": "v", "layers": x}).layers or []) for x in (a, b))
    found = structure(la, lb, "a", "b")
    ops = [(d["op"], d["a"], d["b"]) for d in found["differences"]]
    assert ops == [("changed", ["x"], ["x"]), ("changed", ["m"], ["m"])]
    assert "inputs ['x', 'y'] -> ['input', 'y']" in found["differences"][1]["text"]
    assert found["note"] is not None
    assert "2 places" in found["note"]
    gone = differences(la, la[:1] + la[1:2] + [la[3].model_copy(update={"inputs": ["y"]})])
    assert [(d["op"], d["a"]) for d in gone] == [("removed", ["m"])]


@pytest.mark.parametrize("name", ["article_fair.json", "residual.json"])
def test_a_submitted_comparison_says_how_its_variants_differ(name: str) -> None:
    spec = ComparisonSpec.model_validate(json.loads((EXAMPLES / name).read_text()))
    validated = validate_comparison(spec, SETTINGS)
    first = spec.variants[0]["name"]
    assert validated.analyses[first].structure is None
    for v in spec.variants[1:]:
        found = validated.analyses[v["name"]].structure
        assert found is not None
        assert found["against"] == first
        assert found["differences"]
        assert validated.analyses[v["name"]].to_dict()["structure"] == found
