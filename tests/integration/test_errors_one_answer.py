"""Every independent error of a body in one 422, said so a person can act on it: the names
of the datasets, JSON errors at a line and column, what Content-Type to send; a trailing
slash is the same path; the OpenAPI examples of analyze are accepted as they stand.

The api runs in process on an embedded SQLite database (real SQLAlchemy, real migrations);
the broker is the embedded SQL one, which nothing consumes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_database


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from api.app import create_app
    from core.trials.queue import client_app

    tmp: Path = tmp_path_factory.mktemp("one_answer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHBENCH_DATA_DIR", str(tmp))
        with in_process_database(f"sqlite:///{tmp / 'archbench.db'}", mp):
            client_app.cache_clear()
            try:
                with TestClient(create_app()) as c:
                    yield c
            finally:
                client_app.cache_clear()


def _locs(body: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body["errors"]]


def _msg(body: dict[str, Any], loc: list[Any]) -> str:
    msg: str = next(e["msg"] for e in body["errors"] if e["loc"] == loc)
    return msg


def test_an_empty_seeds_list_does_not_hide_a_duplicate_name(client: TestClient) -> None:
    spec = tiny_spec("dup", seeds=[], variants=[small_mlp("a"), small_mlp("a")])
    body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    assert ["body", "seeds"] in _locs(body)
    assert "already used by variant 0" in _msg(body, ["body", "variants", 1, "name"])


def test_a_layer_type_typo_does_not_hide_the_other_layers_errors(client: TestClient) -> None:
    variant = {
        "name": "typo",
        "layers": [
            {"type": "Conv2D", "filters": 4, "kernel_size": 40},  # larger than 28x28
            {"type": "Dense2", "units": 3},  # the typo
            {"type": "Flatten"},
            {"type": "Dense", "units": -3},
        ],
    }
    spec = tiny_spec("typo", variants=[small_mlp("ok"), variant])
    body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    locs = _locs(body)
    assert ["body", "variants", 1, "layers", 1, "type"] in locs
    assert ["body", "variants", 1, "layers", 3, "units"] in locs
    assert "larger than its input" in _msg(
        body, ["body", "variants", 1, "layers", 0, "kernel_size"]
    )
    assert len(locs) == len({tuple(loc) for loc in locs})  # each error once


def test_a_wrong_dataset_name_lists_the_names_and_hides_nothing(client: TestClient) -> None:
    spec = tiny_spec("ds")
    spec["dataset"]["name"] = "mnist5k"
    spec["variants"][1]["layers"][1]["units"] = -10
    spec["seeds"] = []
    body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    msg = _msg(body, ["body", "dataset", "name"])
    assert "unknown dataset 'mnist5k'" in msg
    for name in ("mnist_5k", "digits", "mnist", "fashion_mnist", "cifar10"):
        assert name in msg
    assert "^(" not in body["detail"] + json.dumps(body["errors"])  # no regular expression
    assert ["body", "variants", 1, "layers", 1, "units"] in _locs(body)
    assert ["body", "seeds"] in _locs(body)
    assert _locs(body).count(["body", "dataset", "name"]) == 1


def test_a_wrong_dataset_name_lists_the_tenants_uploads(client: TestClient) -> None:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x_train=rng.random((60, 8, 8), dtype=np.float32), y_train=np.arange(60) % 3)
    up = client.post(
        "/v1/datasets", files={"file": ("mine.npz", buf.getvalue())}, data={"name": "mine"}
    )
    assert up.status_code in (200, 201), up.text
    upload = up.json()["name"]
    for name in ("upload:0000", "nope"):  # well-formed but missing, and not a name at all
        spec = tiny_spec("ds-upload")
        spec["dataset"]["name"] = name
        body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
        msg = _msg(body, ["body", "dataset", "name"])
        assert f"{upload} (mine)" in msg, msg
        assert "mnist_5k" in msg
    analyzed = client.post(
        "/v1/architectures/analyze",
        json={
            "variant": {"name": "x", "layers": [{"type": "Dense", "units": 0}]},
            "dataset": {"name": "nope"},
        },
    )
    body = assert_problem(analyzed, 422)
    assert f"{upload} (mine)" in _msg(body, ["body", "dataset", "name"])
    assert ["body", "variant", "layers", 0, "units"] in _locs(body)  # in the same answer


def test_malformed_json_is_located_at_a_line_and_column(client: TestClient) -> None:
    text = '{\n  "name": "x",\n  "seeds": [0,, 1]\n}'
    resp = client.post(
        "/v1/comparisons", content=text, headers={"Content-Type": "application/json"}
    )
    body = assert_problem(resp, 422)
    (error,) = body["errors"]
    assert error["loc"] == ["body"]
    assert error["msg"].startswith("invalid JSON at line 3, column 15: ")
    assert text.splitlines()[2][14] == ","  # column 15, 1-based: the stray comma
    assert body["detail"].endswith("invalid JSON at line 3, column 15: Expecting value")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_without_json_content_type_says_what_to_send(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = client.post("/v1/comparisons", content=json.dumps(tiny_spec()), headers=headers)
    body = assert_problem(resp, 422)
    msg = _msg(body, ["body"])
    assert "Content-Type: application/json" in msg
    assert "valid dictionary" not in msg
    assert (repr(content_type) if content_type else "no Content-Type") in msg


def test_a_trailing_slash_is_the_same_path(client: TestClient) -> None:
    resp = client.post("/v1/comparisons/", json=tiny_spec("slash"), follow_redirects=False)
    assert resp.status_code == 202, (resp.status_code, resp.headers, resp.text)
    cid = resp.json()["id"]
    again = client.get(f"/v1/comparisons/{cid}/", follow_redirects=False)
    assert again.status_code == 200
    assert again.json()["id"] == cid
    bad = client.post("/v1/comparisons/", json={**tiny_spec(), "seeds": []}, follow_redirects=False)
    assert_problem(bad, 422)


def test_every_openapi_example_of_analyze_is_accepted(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/architectures/analyze"]["post"]
    content = op["requestBody"]["content"]["application/json"]
    bodies = [e["value"] for e in content.get("examples", {}).values()]
    schema = doc["components"]["schemas"]["AnalyzeRequest"]
    bodies += schema.get("examples", [])
    # The field-level example, alone: a variant that carries its own input shape.
    bodies += [{"variant": v} for v in schema["properties"]["variant"].get("examples", [])]
    assert len(bodies) >= 5
    for body in bodies:
        resp = client.post("/v1/architectures/analyze", json=body)
        assert resp.status_code == 200, (body, resp.text)
        assert resp.json()["params"] > 0
