"""The OpenAPI document types a comparison's variants by the architecture language's schema."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from models.spec import LAYER_TYPES


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app().openapi()


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def test_comparison_variants_and_the_analyze_body_refer_to_variant(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["ComparisonSpec"]["properties"]["variants"]["items"] == {
        "$ref": "#/components/schemas/Variant"
    }
    single = schemas["AnalyzeRequest"]["properties"]["variant"]
    assert single["allOf"] == [{"$ref": "#/components/schemas/Variant"}]
    assert single["examples"]  # the example stays


def test_every_layer_type_is_in_the_tagged_union(doc: dict[str, Any]) -> None:
    variant = doc["components"]["schemas"]["Variant"]
    layers = next(s for s in variant["properties"]["layers"]["anyOf"] if s.get("type") == "array")
    mapping = layers["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(LAYER_TYPES)
    for ref in mapping.values():
        layer = _resolve(doc, ref)
        assert "type" in layer["properties"]


def test_every_reference_in_the_document_resolves(doc: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    found = refs(doc)
    assert any(r.endswith("/Conv2DSpec") for r in found)
    for ref in found:
        _resolve(doc, ref)
