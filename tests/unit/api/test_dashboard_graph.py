"""The dashboard's graph drawing (api/static/graph.js): its layout, run with node on the analyze
answers of real variants (models.analysis, as POST /v1/architectures/analyze gives them).

Each layer is one node one row below the deepest of its inputs, every input is one edge, a
stack is one column, and the branches of a residual block stand side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from models.analysis import analyze_variant
from models.spec import parse_variant
from tests.support.graphs import GRAPHS
from tests.support.helpers import small_cnn

GRAPH_JS = Path(__file__).resolve().parents[3] / "api" / "static" / "graph.js"


def _analysis(name: str, layers: list[dict[str, Any]], shape: list[int]) -> dict[str, Any]:
    variant = parse_variant({"name": name, "input_shape": shape, "layers": layers})
    _, _, analysis = analyze_variant(variant, input_shape=tuple(shape))
    return analysis.to_dict()


def _layout(analysis: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("node is needed to run the dashboard's graph layout (.ci/run installs it)")
        pytest.skip("node is not installed: the dashboard's graph layout cannot be run here")
    script = (
        f"const {{ graphLayout }} = require({json.dumps(str(GRAPH_JS))});"
        f"process.stdout.write(JSON.stringify(graphLayout({json.dumps(analysis)})));"
    )
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _depths(analysis: dict[str, Any]) -> dict[str, int]:
    """Each layer's row, recomputed: one below the deepest of its inputs (the input is 0)."""
    depth = {"input": 0}
    for layer in analysis["layers"]:
        depth[layer["name"]] = 1 + max(depth[p] for p in layer["inputs"])
    return depth


@pytest.mark.parametrize("name", ["resnet_basic", "inception", "densenet"])
def test_a_branching_graph_has_a_node_per_layer_and_an_edge_per_input(name: str) -> None:
    analysis = _analysis(name, GRAPHS[name], [8, 8, 3])
    g = _layout(analysis)
    nodes = {n["name"]: n for n in g["nodes"]}
    assert set(nodes) == {"input", *(layer["name"] for layer in analysis["layers"])}
    expected = {(p, layer["name"]) for layer in analysis["layers"] for p in layer["inputs"]}
    assert {(e["from"], e["to"]) for e in g["edges"]} == expected
    assert len(g["edges"]) == sum(len(layer["inputs"]) for layer in analysis["layers"])
    depth = _depths(analysis)
    for n in g["nodes"]:
        assert n["depth"] == depth[n["name"]]
        assert n["y"] == 12 + 58 * depth[n["name"]]
    for layer in analysis["layers"]:
        node = nodes[layer["name"]]
        assert node["type"] == layer["type"]
        assert node["shape"] == "\u00d7".join(map(str, layer["output_shape"]))
    # No two nodes overlap, and every node lies inside the drawing.
    w = g["nodeW"]
    boxes = [(n["x"], n["y"]) for n in g["nodes"]]
    for i, (x, y) in enumerate(boxes):
        assert x >= 0
        assert x + w <= g["width"]
        assert y + 36 <= g["height"]
        for x2, y2 in boxes[i + 1 :]:
            assert y != y2 or abs(x - x2) >= w


def test_the_residual_branches_stand_side_by_side() -> None:
    g = _layout(_analysis("res", GRAPHS["resnet_basic"], [8, 8, 3]))
    nodes = {n["name"]: n for n in g["nodes"]}
    # The projection shortcut and the main path's first conv both take the stem: one row.
    assert nodes["proj"]["y"] == nodes["a1"]["y"]
    assert nodes["proj"]["x"] != nodes["a1"]["x"]
    assert g["width"] > 2 * g["nodeW"]
    add = [e for e in g["edges"] if e["to"] == "add"]
    assert sorted(e["from"] for e in add) == ["bn2", "proj"]


def test_a_stack_stays_a_column() -> None:
    analysis = _analysis("cnn", small_cnn()["layers"], [28, 28, 1])
    g = _layout(analysis)
    assert len({n["x"] for n in g["nodes"]}) == 1
    assert [n["depth"] for n in g["nodes"]] == list(range(len(analysis["layers"]) + 1))
    assert len(g["edges"]) == len(analysis["layers"])
    assert g["nodes"][0]["shape"] == "28\u00d728\u00d71"
