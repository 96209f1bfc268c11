"""``GET /v1/comparisons?status=``: the filter takes core.status.ComparisonStatus itself, so the
OpenAPI document lists exactly its words, any other word is a 422 problem at ``query.status``,
and each word still selects the comparisons in that state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.status import ComparisonStatus
from core.store.db import session_scope
from core.store.tables import Comparison
from tests.support.helpers import assert_problem, stored_spec
from tests.support.services import in_process_api


def _enum_of(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The enum of a parameter schema ``anyOf: [enum or $ref to one, null]``."""
    (named,) = [s for s in schema["anyOf"] if s.get("type") != "null"]
    if "$ref" in named:
        named = doc["components"]["schemas"][named["$ref"].rsplit("/", 1)[-1]]
    return list(named["enum"])


def test_status_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        doc = client.get("/openapi.json").json()
        params = doc["paths"]["/v1/comparisons"]["get"]["parameters"]
        (status,) = [p for p in params if p["name"] == "status"]
        assert (status["in"], status["required"]) == ("query", False)
        assert _enum_of(doc, status["schema"]) == [s.value for s in ComparisonStatus]

        bad = client.get("/v1/comparisons", params={"status": "paused"})
        assert assert_problem(bad, 422)["errors"][0]["loc"] == ["query", "status"]

        with session_scope() as s:
            for word in ComparisonStatus:
                s.add(Comparison(name=f"c-{word}", status=word, spec=stored_spec()))
        for word in ComparisonStatus:
            listed = client.get("/v1/comparisons", params={"status": word.value})
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert [(c["name"], c["status"]) for c in items] == [(f"c-{word}", word.value)]
        assert len(client.get("/v1/comparisons").json()["items"]) == len(ComparisonStatus)
