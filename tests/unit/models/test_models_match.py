"""Matched sizes: one width factor brings a variant within the tolerance of another's count,
and the resized variant's analysis equals what Keras builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from models import analyze, parse_variant
from models.match import match_widths, scaled
from models.spec import Layer

ARTICLE = json.loads((Path(__file__).parents[3] / "examples" / "article.json").read_text())
SHAPE = (28, 28, 1)


def _layers(name: str) -> list[Layer]:
    raw: dict[str, Any] = next(v for v in ARTICLE["variants"] if v["name"] == name)
    variant = parse_variant(raw)
    assert variant.layers is not None
    return list(variant.layers)


def _count(layers: list[Layer], by: Literal["params", "flops"]) -> int:
    a = analyze(layers, SHAPE, num_classes=10)
    return a.params if by == "params" else a.flops


@pytest.mark.parametrize("by", ["params", "flops"])
@pytest.mark.parametrize(("resized", "to"), [("conv64x2", "conv128"), ("conv128", "conv64x3")])
def test_the_article_models_match_within_five_percent(
    resized: str, to: str, by: Literal["params", "flops"]
) -> None:
    target = _count(_layers(to), by)
    match, closest = match_widths(
        _layers(resized), SHAPE, target=target, by=by, tolerance=0.05, num_classes=10
    )
    assert match is not None, f"closest {closest.count:,} for {target:,}"
    assert abs(match.count / target - 1) <= 0.05
    assert match.count == _count(match.layers, by)  # the count is the resized layers' own
    assert match.widths()[-1] == 10  # the output layer keeps the classes
    assert match.factor != 1.0


def test_a_factor_scales_every_width_but_the_outputs() -> None:
    out = scaled(_layers("conv64x2"), 1.5)
    assert [getattr(x, "filters", getattr(x, "units", None)) for x in out] == [
        96,
        96,
        None,
        None,
        10,
    ]


def test_no_width_to_scale_means_no_match_and_says_how_close() -> None:
    layers = list(
        parse_variant(
            {"name": "head", "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10}]}
        ).layers
        or []
    )
    match, closest = match_widths(layers, SHAPE, target=1_000_000, by="params", tolerance=0.05)
    assert match is None
    assert closest.count == 7_850
    assert closest.factor == 1.0


def test_a_tolerance_too_tight_for_the_rounding_finds_no_match() -> None:
    target = _count(_layers("conv128"), "params") + 1
    match, closest = match_widths(
        _layers("conv64x2"), SHAPE, target=target, by="params", tolerance=1e-9, num_classes=10
    )
    assert match is None
    assert abs(closest.gap) < 0.05


def test_the_resized_variant_counts_as_keras_builds_it() -> None:
    keras = pytest.importorskip("keras")
    from models import build_model

    target = _count(_layers("conv128"), "params")
    match, _ = match_widths(
        _layers("conv64x3"), SHAPE, target=target, by="params", tolerance=0.05, num_classes=10
    )
    assert match is not None
    model = build_model(match.layers, SHAPE)
    assert isinstance(model, keras.Model)
    assert model.count_params() == match.count
