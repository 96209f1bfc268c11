"""Matched sizes at submit: a variant's ``match`` resizes its widths to another variant's
parameters or FLOPs before anything is stored, the stored spec records the resized layers and
the widths used, the analysis is the resized variant's (and Keras's count), each refusal is
located at ``variants[i].match``, and the report's notes say the sizes are matched."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import pytest

from core.config import Settings
from core.errors import InvalidInput
from core.report.build import build_report
from core.spec import ComparisonSpec, StoredSpec
from core.trials.validation import ValidatedComparison, validate_comparison
from models import analyze
from tests.support.trials import make_trial

SETTINGS = Settings(database_url="sqlite://", data_dir="/tmp/archbench-unused")
ARTICLE: dict[str, Any] = json.loads(
    (Path(__file__).parents[3] / "examples" / "article.json").read_text()
)
SHAPE = (28, 28, 1)


def _article(index: int, match: Any) -> dict[str, Any]:
    body = copy.deepcopy(ARTICLE)
    body["variants"][index]["match"] = match
    return body


def _validated(body: dict[str, Any]) -> ValidatedComparison:
    return validate_comparison(ComparisonSpec.model_validate(body), SETTINGS)


def _errors(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(InvalidInput) as info:
        _validated(body)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors]


def _width(layer: dict[str, Any]) -> int | None:
    value = layer.get("filters", layer.get("units"))
    return value if isinstance(value, int) else None


@pytest.mark.parametrize("by", ["params", "flops"])
@pytest.mark.parametrize(
    ("resized", "to"), [(1, "conv128"), (2, "conv128"), (0, "conv64x2"), (0, "conv64x3")]
)
def test_the_article_models_match_within_the_tolerance_and_store_the_resized_layers(
    resized: int, to: str, by: Literal["params", "flops"]
) -> None:
    done = _validated(_article(resized, {"variant": to, "by": by, "tolerance": 0.05}))
    variant = done.spec.variants[resized]
    record = variant.match
    assert record is not None
    # The analysis is of the resized layers as stored, recomputed here from them.
    again = analyze(variant.parse().layers or [], SHAPE, num_classes=10)
    assert done.analyses[variant.name].params == again.params
    assert done.analyses[variant.name].flops == again.flops
    reached = again.params if by == "params" else again.flops
    target = done.analyses[to].params if by == "params" else done.analyses[to].flops
    assert (record.count, record.target) == (reached, target)
    assert abs(reached / target - 1) <= 0.05
    assert record.gap == pytest.approx(reached / target - 1)
    # The stored widths are the record's, and every width but the output's moved by the factor.
    sent = ARTICLE["variants"][resized]["layers"]
    assert [_width(x) for x in variant.layers] == record.widths
    assert record.widths[-1] == 10
    for before, after in zip(sent[:-1], record.widths[:-1], strict=True):
        if _width(before) is not None:
            assert after == max(1, round(_width(before) * record.factor))  # type: ignore[operator]
    assert record.factor != 1.0
    # The target and the other variants are as they were sent.
    for i, other in enumerate(done.spec.variants):
        if i != resized:
            assert other.match is None
            assert [_width(x) for x in other.layers] == [
                _width(x) for x in ARTICLE["variants"][i]["layers"]
            ]


def test_the_stored_spec_keeps_the_match_and_a_spec_without_one_is_unchanged() -> None:
    plain = _validated(copy.deepcopy(ARTICLE)).spec.dump()
    assert all("match" not in v for v in plain["variants"])
    stored = _validated(_article(1, {"variant": "conv128"})).spec.dump()
    assert stored["variants"][1]["match"]["variant"] == "conv128"
    assert stored["variants"][1]["match"]["by"] == "params"  # the defaults are recorded
    assert stored["variants"][1]["match"]["tolerance"] == 0.05
    again = StoredSpec.load(json.loads(json.dumps(stored)))
    assert again.dump() == stored
    assert again.design.matched["conv64x2"].variant == "conv128"


def test_the_resized_variant_counts_as_keras_builds_it() -> None:
    pytest.importorskip("keras")
    from models import build_model

    for by in ("params", "flops"):
        done = _validated(_article(2, {"variant": "conv128", "by": by}))
        variant = done.spec.variants[2]
        model = build_model(variant.parse().layers or [], SHAPE)
        assert model.count_params() == done.analyses["conv64x3"].params


@pytest.mark.parametrize(
    ("match", "words"),
    [
        ({"variant": "conv64x2"}, "cannot be matched to itself"),
        ({"variant": "resnet"}, "'resnet' is not a variant of this comparison"),
        ({"variant": "conv128", "tolerance": 1e-7}, "no width factor brings conv64x2's"),
    ],
)
def test_a_match_that_cannot_be_met_is_refused_at_the_variants_match(
    match: dict[str, Any], words: str
) -> None:
    errors = _errors(_article(1, match))
    assert [loc for loc, _ in errors] == [("body", "variants", 1, "match")]
    assert words in errors[0][1]


def test_no_reachable_factor_says_how_near_the_closest_came() -> None:
    body = _article(1, {"variant": "conv128", "tolerance": 1e-7})
    ((_, msg),) = _errors(body)
    assert "conv64x2's parameters within 1e-05% of conv128's 866,570" in msg
    assert "the closest, x" in msg
    assert "widths [" in msg


def test_a_chain_of_matches_is_refused_at_the_second() -> None:
    body = _article(1, {"variant": "conv128"})
    body["variants"][2]["match"] = {"variant": "conv64x2", "by": "flops"}
    errors = _errors(body)
    assert [loc for loc, _ in errors] == [("body", "variants", 2, "match")]
    assert "'conv64x2' is itself matched (to 'conv128')" in errors[0][1]


def test_a_malformed_match_is_located_at_its_field() -> None:
    errors = _errors(_article(0, {"variant": "conv64x2", "by": "weights", "extra": 1}))
    assert {loc for loc, _ in errors} == {
        ("body", "variants", 0, "match", "by"),
        ("body", "variants", 0, "match", "extra"),
    }


def test_a_resized_variant_over_the_servers_limits_is_refused_at_its_match() -> None:
    small = Settings(
        database_url="sqlite://", data_dir="/tmp/archbench-unused", max_params=1_000_000
    )
    body = _article(0, {"variant": "conv64x2", "by": "flops"})  # conv128 grows 13-fold
    with pytest.raises(InvalidInput) as info:
        validate_comparison(ComparisonSpec.model_validate(body), small)
    (error,) = info.value.errors
    assert error["loc"] == ["body", "variants", 0, "match"]
    assert error["msg"].startswith("resized to conv64x2's FLOPs, ")
    assert "exceeds the limit of 1,000,000" in error["msg"]


def test_the_report_notes_say_the_sizes_are_matched() -> None:
    done = _validated(_article(1, {"variant": "conv128", "by": "flops", "tolerance": 0.05}))
    record = done.spec.variants[1].match
    assert record is not None
    trials = [make_trial(v.name, s, 0.9 + 0.01 * s) for v in done.spec.variants for s in range(3)]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=done.spec.variant_names,
        trials=trials,
        final=True,
        variant_info=done.analyses,
        design=done.spec.design,
    )
    assert report["design"]["matched"]["conv64x2"]["count"] == record.count
    (note,) = [n for n in report["notes"] if n.startswith("The sizes are matched")]
    assert note == (
        f"The sizes are matched: conv64x2's widths were scaled by {record.factor:.3g} to "
        f"conv128's FLOPs ({record.count:,} vs {record.target:,}, a gap of "
        f"{100 * (record.count / record.target - 1):+.3g}%, within the 5% asked), so a "
        "difference "
        "between them is not one of size."
    )
