"""What a refused submission says: the shape a field expects, only the dataset's error for a
misspelt dataset, and which layer and setting a parameter limit is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api


def _errors(client: Any, **patch: Any) -> list[dict[str, Any]]:
    spec = tiny_spec("messages", variants=[small_mlp(), small_mlp() | {"name": "b"}], seeds=[0])
    spec.update(patch)
    return list(assert_problem(client.post("/v1/comparisons", json=spec), 422)["errors"])


def test_submit_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHBENCH_MAX_PARAMS", "50000")
    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        assert _errors(client, dataset="mnist_5k") == [
            {
                "loc": ["body", "dataset"],
                "msg": 'dataset must be an object such as {"name": "mnist_5k"}, not a string '
                '("mnist_5k")',
            }
        ]
        assert _errors(client, seeds=5) == [
            {
                "loc": ["body", "seeds"],
                "msg": "seeds must be a list of seeds such as [0, 1, 2], or "
                '{"min": 3, "max": 20, "step": 1}, not a number (5)',
            }
        ]
        (misspelt,) = _errors(client, dataset={"name": "mnist_5"})
        assert misspelt["loc"] == ["body", "dataset", "name"]
        assert misspelt["msg"].startswith("unknown dataset 'mnist_5'; the datasets are mnist_5k")
        (schema_misspelt,) = _errors(client, dataset={"name": "mnist 5k"})
        assert schema_misspelt["loc"] == ["body", "dataset", "name"]

        big = small_mlp() | {"name": "big"}
        big["layers"] = [{"type": "Flatten"}, {"type": "Dense", "units": 128}, big["layers"][-1]]
        (limit,) = _errors(client, variants=[big])
        assert limit["loc"] == ["body", "variants", 0, "layers"]
        assert limit["msg"] == (
            "101,770 parameters exceeds the limit of 50,000 (the server's ARCHBENCH_MAX_PARAMS); "
            "the largest is layers[1] (Dense 'dense') with 100,480 parameters"
        )


def test_the_202_answer_carries_the_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        few = client.post(
            "/v1/comparisons", json=tiny_spec("few", variants=[small_mlp()], seeds=[0])
        )
        assert few.status_code == 202, few.text
        assert [w["loc"] for w in few.json()["warnings"]] == [["body", "seeds"]]
        assert few.json()["warnings"][0]["msg"].startswith("1 seed(s) per variant")
        ok = client.post(
            "/v1/comparisons", json=tiny_spec("ok", variants=[small_mlp()], seeds=[0, 1, 2])
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["warnings"] == []
        assert "warnings" not in client.get(f"/v1/comparisons/{ok.json()['id']}").json()
        doc = client.get("/openapi.json").json()
        answer = doc["paths"]["/v1/comparisons"]["post"]["responses"]["202"]["content"]
        assert answer["application/json"]["schema"]["$ref"].endswith("/SubmittedOut")
