"""Graphs through the api, in process: malformed ones are 422s located at the offending layer
(nothing stored), a valid one is analysed with each node's ``inputs`` and stored canonical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.graphs import GRAPHS, MALFORMED, malformed_variant, reordered
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_database


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from api.app import create_app

    tmp: Path = tmp_path_factory.mktemp("graph_api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHBENCH_DATA_DIR", str(tmp))
        with in_process_database(f"sqlite:///{tmp / 'archbench.db'}", mp):
            yield TestClient(create_app(), raise_server_exceptions=True)


@pytest.mark.parametrize(
    ("case", "layers", "loc", "fragment"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
def test_malformed_graph_is_a_located_422(
    client: TestClient, case: str, layers: list[dict[str, Any]], loc: list[Any], fragment: str
) -> None:
    variant = malformed_variant((case, layers, loc, fragment))
    spec = tiny_spec("graph", variants=[small_mlp("ok"), variant])
    body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    want = ["body", "variants", 1, *loc]
    assert any(e["loc"] == want and fragment in e["msg"] for e in body["errors"]), body["errors"]
    assert client.get("/v1/comparisons").json()["items"] == []


def test_analyze_answers_nodes_with_their_inputs(client: TestClient) -> None:
    variant = {"name": "res", "input_shape": [8, 8, 3], "layers": GRAPHS["resnet_basic"]}
    resp = client.post("/v1/architectures/analyze", json={"variant": variant})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    by = {n["name"]: n for n in body["layers"]}
    assert by["add"]["inputs"] == ["proj", "bn2"]
    assert by["stem"]["inputs"] == ["input"]
    assert (body["depth"], body["merge_points"]) == (10, 1)


def test_a_typo_after_a_branch_reports_no_false_graph_errors(client: TestClient) -> None:
    layers = [dict(x) for x in GRAPHS["resnet_basic"]]
    layers[-1] = {**layers[-1], "type": "Dense2"}
    variant = {"name": "res", "input_shape": [8, 8, 3], "layers": layers}
    body = assert_problem(client.post("/v1/architectures/analyze", json={"variant": variant}), 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "variant", "layers", 10, "type"]]


def test_a_graph_in_another_order_is_stored_the_same(client: TestClient) -> None:
    stored = []
    for layers in (GRAPHS["inception"], reordered(GRAPHS["inception"])):
        variant = {"name": "inc", "layers": layers}
        spec = tiny_spec("inc", variants=[small_mlp("ok"), variant])
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        stored.append(resp.json()["spec"]["variants"][1]["layers"])
    assert stored[0] == stored[1]
    assert [x["name"] for x in stored[0]][-1] == "out"
    assert all({"name", "inputs"} <= x.keys() for x in stored[0])


NAMES = st.sampled_from(["input", "a", "b", "c", "nope"])
FUZZ_LAYER = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Add", "Concatenate", "Multiply", "Conv2D", "Flatten", "Dense"]),
        "name": st.sampled_from(["a", "b", "c", "input"]),
        "inputs": st.lists(NAMES, min_size=0, max_size=3),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(FUZZ_LAYER, min_size=1, max_size=5), output=st.none() | NAMES)
def test_fuzzed_graphs_get_an_analysis_or_a_located_422(
    client: TestClient, raw: list[dict[str, Any]], output: str | None
) -> None:
    layers = []
    for x in raw:
        layer = {k: v for k, v in x.items() if v != []}
        if layer["type"] == "Conv2D":
            layer |= {"filters": 2, "kernel_size": 3, "padding": "same"}
        if layer["type"] == "Dense":
            layer["units"] = 10
        layers.append(layer)
    variant: dict[str, Any] = {"name": "f", "input_shape": [6, 6, 2], "layers": layers}
    if output is not None:
        variant["output"] = output
    resp = client.post("/v1/architectures/analyze", json={"variant": variant})
    if resp.status_code == 200:
        return
    body = assert_problem(resp, 422)
    for e in body["errors"]:
        assert e["loc"][:2] == ["body", "variant"]
        assert e["msg"]
        if len(e["loc"]) > 3 and e["loc"][2] == "layers":
            assert 0 <= e["loc"][3] < len(layers)
