"""The report says, per tested pair, how the two architectures differ (from their graphs)."""

from __future__ import annotations

import json
from pathlib import Path

from core.config import Settings
from core.report.load import pair_structures
from core.report.schema import PairStructure
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison

EXAMPLES = Path(__file__).parents[3] / "examples"


def _spec(name: str) -> ComparisonSpec:
    return ComparisonSpec.model_validate(json.loads((EXAMPLES / name).read_text()))


def test_the_articles_pairs_say_what_differs_and_that_it_is_more_than_one_thing() -> None:
    spec = validate_comparison(_spec("article.json"), Settings()).spec
    pairs = [{"a": "conv128", "b": "conv64x2"}, {"a": "conv128", "b": "conv64x3"}]
    out = pair_structures(spec, pairs)
    assert [(s["a"], s["b"]) for s in out] == [("conv128", "conv64x2"), ("conv128", "conv64x3")]
    first = out[0]
    texts = [d["text"] for d in first["differences"]]
    assert any(
        "conv64x2 adds a second Conv2D(64) and a MaxPooling2D(2) before Flatten" in t for t in texts
    ), texts
    assert {d["op"] for d in first["differences"]} == {"added", "changed"}
    assert first["note"] is not None
    assert "cannot be pinned" in first["note"]
    for row in out:
        PairStructure.model_validate(row)  # the report's typed shape


def test_the_fair_article_differs_only_in_the_convolutions() -> None:
    spec = validate_comparison(_spec("article_fair.json"), Settings()).spec
    names = spec.variant_names
    (row,) = pair_structures(spec, [{"a": names[0], "b": names[1]}])
    assert row["differences"]
    assert all("Conv2D" in d["text"] for d in row["differences"]), row["differences"]


def test_a_variant_that_no_longer_parses_is_left_out_not_fatal() -> None:
    spec = validate_comparison(_spec("article.json"), Settings()).spec
    broken = spec.model_copy(
        update={
            "variants": [
                spec.variants[0].model_copy(update={"layers": [{"type": "Nope"}]}),
                *spec.variants[1:],
            ]
        }
    )
    out = pair_structures(
        broken, [{"a": "conv128", "b": "conv64x2"}, {"a": "conv64x2", "b": "conv64x3"}]
    )
    assert [(s["a"], s["b"]) for s in out] == [("conv64x2", "conv64x3")]


def test_the_markdown_lists_how_each_pair_differs() -> None:
    from core.report.render import _structure_lines

    spec = validate_comparison(_spec("article.json"), Settings()).spec
    rows = pair_structures(spec, [{"a": "conv128", "b": "conv64x2"}])
    lines = _structure_lines(rows)
    assert lines[0] == "## How they differ"
    assert "- **conv128 vs conv64x2:**" in lines
    assert sum(1 for x in lines if x.startswith("  - ")) == len(rows[0]["differences"])
    assert _structure_lines([]) == []
