"""A variant's ``match`` over HTTP: a resized variant is stored with its widths and shown by
``GET``; a match that cannot be met is a problem located at ``variants[i].match``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _wide(name: str, units: int) -> dict[str, object]:
    variant = small_mlp(name)
    variant["layers"][1]["units"] = units
    return variant


def test_a_matched_variant_is_stored_resized(client: TestClient) -> None:
    narrow = {**_wide("narrow", 16), "match": {"variant": "wide", "by": "params"}}
    resp = client.post("/v1/comparisons", json=tiny_spec(variants=[_wide("wide", 64), narrow]))
    assert resp.status_code == 202, resp.text
    spec = client.get(f"/v1/comparisons/{resp.json()['id']}").json()["spec"]
    stored = spec["variants"][1]
    assert stored["match"]["widths"] == [None, 64, 10]
    assert stored["layers"][1]["units"] == 64
    assert stored["match"]["factor"] == pytest.approx(4.0, rel=0.05)
    assert "match" not in spec["variants"][0]


def test_a_match_to_no_variant_is_a_located_problem(client: TestClient) -> None:
    narrow = {**_wide("narrow", 16), "match": {"variant": "wide"}}
    resp = client.post("/v1/comparisons", json=tiny_spec(variants=[_wide("other", 64), narrow]))
    body = assert_problem(resp, 422)
    assert [e["loc"] for e in body["errors"]] == [["body", "variants", 1, "match"]]
    assert "'wide' is not a variant of this comparison" in body["errors"][0]["msg"]
