"""NUL characters in what a client sends are a located 422 on Postgres, never a 500.

Postgres text cannot hold NUL (psycopg refuses the parameter), SQLite can: so this runs the
api in process against a real Postgres database, where the fuzz run (on SQLite) cannot look.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import tiny_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = pytest.mark.services


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_AUTH", "false")
    with fresh_database("archbench_nul") as url, in_process_database(url, monkeypatch):
        from api.app import create_app

        with TestClient(create_app(check_migrations=False), raise_server_exceptions=False) as c:
            yield c


def _npz() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x_train=rng.random((40, 8, 8), dtype=np.float32), y_train=np.arange(40) % 4)
    return buf.getvalue()


def _located(resp: Any, loc: list[Any]) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    errors = resp.json()["errors"]
    assert any(e["loc"] == loc and "NUL" in e["msg"] for e in errors), errors


def test_nul_in_the_body_query_and_form_is_a_located_422(client: TestClient) -> None:
    named = tiny_spec("a\x00b")
    _located(client.post("/v1/comparisons", json=named), ["body", "name"])
    hooked = {**tiny_spec("hooked"), "callback_url": "https://example.org/a\x00b"}
    _located(client.post("/v1/comparisons", json=hooked), ["body", "callback_url"])
    _located(client.get("/v1/comparisons", params={"name": "a\x00b"}), ["query", "name"])
    some_id = str(uuid.uuid4())
    resp = client.get(f"/v1/comparisons/{some_id}/trials", params={"variant": "a\x00b"})
    assert resp.status_code in (404, 422), resp.text
    upload = client.post("/v1/datasets", files={"file": ("d.npz", _npz())}, data={"name": "a\x00b"})
    _located(upload, ["body", "name"])
    # Nothing was stored by any of them, and the same requests without NUL work.
    assert client.get("/v1/comparisons").json()["items"] == []
    assert client.get("/v1/comparisons", params={"name": "ab"}).status_code == 200
    assert client.get("/v1/comparisons", params={"name": ""}).status_code == 200
    # An explicit null where a string is optional is not a string to check (the fuzz run
    # found this one as a 500).
    nulled = {**tiny_spec("nulled"), "callback_url": None, "name": "x"}
    accepted = client.post("/v1/comparisons", json=nulled)
    assert accepted.status_code == 202, accepted.text
    ok = client.post("/v1/datasets", files={"file": ("d.npz", _npz())}, data={"name": "ab"})
    assert ok.status_code == 201, ok.text


def test_nul_in_a_path_id_is_a_404(client: TestClient) -> None:
    for path in ("/v1/comparisons/a%00b", "/v1/comparisons/a%00b/report"):
        resp = client.get(path)
        assert resp.status_code == 404, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
