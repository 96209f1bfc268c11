"""Graphs: the analysis equals the Functional model Keras builds, in any written order; the
malformed ones are refused at the offending layer; the figures of a graph recomputed by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

from models import analyze, build_model, parse_variant  # noqa: E402
from models.analysis import Analysis  # noqa: E402
from models.errors import SpecError  # noqa: E402
from models.graph import canonical_layers, resolve  # noqa: E402
from models.merge import MERGE_TYPES  # noqa: E402
from models.spec import Layer  # noqa: E402
from tests.support.graphs import (  # noqa: E402
    GRAPHS,
    IMG,
    MALFORMED,
    malformed_variant,
    reordered,
)

CASES = {**GRAPHS, **{f"{name} reordered": reordered(g) for name, g in GRAPHS.items()}}


def parsed(layers: list[dict[str, Any]]) -> list[Layer]:
    return list(parse_variant({"name": "g", "layers": layers}).layers or [])


def refusal(variant: dict[str, Any], shape: tuple[int, ...]) -> list[Any]:
    """The located errors of a variant on ``shape`` (none when it is valid)."""
    try:
        v = parse_variant(variant)
        analyze(list(v.layers or []), shape, num_classes=10, output=v.output)
    except SpecError as exc:
        return list(exc.errors)
    return []


@pytest.fixture(autouse=True)
def _clear() -> None:
    keras.utils.clear_session(free_memory=False)


def assert_matches_keras(model: Any, analysis: Analysis) -> None:
    assert model.count_params() == analysis.params
    ours = {a.name: a for a in analysis.layers}
    keras_layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    assert {layer.name for layer in keras_layers} == set(ours)
    for layer in keras_layers:
        assert tuple(layer.output.shape[1:]) == ours[layer.name].output_shape, layer.name
        assert layer.count_params() == ours[layer.name].params, layer.name
        parents = layer._inbound_nodes[0].input_tensors
        names = [t._keras_history.operation.name for t in parents]
        assert names == ours[layer.name].inputs, layer.name
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == analysis.trainable_params


def test_at_least_twelve_graphs_cover_every_merge_type() -> None:
    assert len(CASES) >= 12
    used = {layer["type"] for g in GRAPHS.values() for layer in g}
    assert used >= MERGE_TYPES


@pytest.mark.parametrize("name", CASES)
def test_graph_analysis_equals_keras(name: str) -> None:
    layers = parsed(CASES[name])
    analysis = analyze(layers, IMG, num_classes=10)
    model = build_model(layers, IMG)
    assert type(model).__name__ == "Functional"
    assert_matches_keras(model, analysis)


@pytest.mark.parametrize("name", GRAPHS)
def test_another_order_is_the_same_graph(name: str) -> None:
    a, b = parsed(GRAPHS[name]), parsed(reordered(GRAPHS[name]))
    first, second = analyze(a, IMG), analyze(b, IMG)
    assert {x.name: x for x in first.layers} == {x.name: x for x in second.layers}
    assert (first.params, first.flops, first.depth, first.merge_points) == (
        second.params,
        second.flops,
        second.depth,
        second.merge_points,
    )
    assert canonical_layers(resolve(a)) == canonical_layers(resolve(b))


def test_defaults_spelled_out_are_the_same_stack() -> None:
    plain: list[dict[str, Any]] = [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10},
    ]
    spelled: list[dict[str, Any]] = [
        {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "name": "conv2d",
         "inputs": ["input"]},
        {"type": "Flatten", "name": "flatten", "inputs": "conv2d"},
        {"type": "Dense", "units": 10, "inputs": ["flatten"], "activation": None},
    ]  # fmt: skip
    a, b = canonical_layers(resolve(parsed(plain))), canonical_layers(resolve(parsed(spelled)))
    assert a == b
    assert all("name" not in x and "inputs" not in x for x in a)  # a stack stores as before
    model = build_model(parsed(spelled), IMG)
    assert type(model).__name__ == "Sequential"


def test_resnet_basic_figures_by_hand() -> None:
    a = analyze(parsed(GRAPHS["resnet_basic"]), IMG, num_classes=10)
    by = {x.name: x for x in a.layers}
    # stem 3x3 (rf 3), a1 (5), a2 (7); the add takes the largest path: 7.
    assert by["stem"].receptive_field == [3, 3]
    assert by["add"].receptive_field == [7, 7]
    assert by["add"].flops == 8 * 8 * 8  # one addition per output value
    assert by["proj"].receptive_field == [3, 3]
    # stem, a1, bn1, r1, a2, bn2, add, r2, gap, out: 10 layers on the longest path.
    assert (a.depth, a.merge_points) == (10, 1)
    # Peak, in the written order: while proj runs, bn2's output (waiting for add), stem's
    # (read by proj) and proj's are alive; 3 tensors of 8x8x8 float32.
    act = 8 * 8 * 8 * 4
    assert a.activations is not None
    assert a.activations.peak_bytes_per_sample == 3 * act
    assert a.activations.total_bytes_per_sample == sum(
        math.prod(x.output_shape) * 4 for x in a.layers
    )


def test_bottleneck_receptive_field_takes_the_largest_path() -> None:
    a = analyze(parsed(GRAPHS["resnet_bottleneck"]), IMG)
    by = {x.name: x for x in a.layers}
    # main: stem 3, reduce 1x1 (3), mid 3x3 stride 2 (5), expand (5); shortcut 1x1 (3).
    assert by["add"].receptive_field == [5, 5]
    assert by["add"].output_shape == (4, 4, 16)


def test_inception_concatenates_channels_and_squeeze_excitation_broadcasts() -> None:
    inc = {x.name: x for x in analyze(parsed(GRAPHS["inception"]), IMG).layers}
    assert inc["cat"].output_shape == (8, 8, 16)
    assert inc["cat"].inputs == ["b1", "b3", "b5", "bp"]
    assert inc["cat"].receptive_field == [7, 7]  # stem 3 + b5's 5x5
    se = {x.name: x for x in analyze(parsed(GRAPHS["squeeze_excitation"]), IMG).layers}
    assert se["scale"].output_shape == (8, 8, 16)
    assert se["fc2"].output_shape == (1, 1, 16)


@pytest.mark.parametrize(
    ("case", "layers", "loc", "fragment"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
def test_malformed_graph_is_located(
    case: str, layers: list[dict[str, Any]], loc: list[Any], fragment: str
) -> None:
    variant = malformed_variant((case, layers, loc, fragment))
    errors = refusal(variant, (28, 28, 1))
    assert any(e["loc"] == loc and fragment in e["msg"] for e in errors), errors


def test_the_corpus_has_twelve_graph_refusals() -> None:
    assert len(MALFORMED) >= 12


NAMES = st.sampled_from(["input", "a", "b", "c", "d", "nope"])
FUZZ_LAYER = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Add", "Concatenate", "Conv2D", "Flatten", "Subtract", "Dense"]),
        "name": st.sampled_from(["a", "b", "c", "d", "input"]),
        "inputs": st.lists(NAMES, min_size=0, max_size=3),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FUZZ_LAYER, min_size=1, max_size=6))
def test_fuzzed_graphs_are_analysed_or_refused_with_a_location(
    raw: list[dict[str, Any]],
) -> None:
    layers = []
    for x in raw:
        layer = dict(x)
        if not layer["inputs"]:
            del layer["inputs"]
        if layer["type"] == "Conv2D":
            layer |= {"filters": 2, "kernel_size": 3, "padding": "same"}
        if layer["type"] == "Dense":
            layer["units"] = 10
        layers.append(layer)
    for e in refusal({"name": "f", "layers": layers}, (6, 6, 2)):
        assert e["loc"]
        assert e["msg"]
        if e["loc"][0] == "layers":
            assert isinstance(e["loc"][1], int)
            assert 0 <= e["loc"][1] < len(layers)
