"""The tuning section on Postgres: the report's trial query (one ``json_to_record`` per epoch
row) keeps the tuning trials out of the tested statistics, and the section and ``tuning.png``
read them, as on SQLite (``tests/unit/api/test_tuning_routes.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.services import in_process_api
from tests.unit.api.test_tuning_routes import _add_tuning, _submit

pytestmark = pytest.mark.services


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("postgres", tmp_path, monkeypatch) as c:
        yield c


def test_the_tuning_section_and_png_from_postgres_rows(client: TestClient) -> None:
    cid = _submit(client)
    _add_tuning(cid)
    report = client.get(f"/v1/comparisons/{cid}/report").json()
    a, b = report["tuning"]["variants"]
    assert (a["validation_score"], b["validation_score"]) == (0.83, 0.90)
    assert [len(v["expected_best"]) for v in (a, b)] == [3, 3]
    assert [v["n"] + v["n_running"] for v in report["variants"]] == [2, 2]
    png = client.get(f"/v1/comparisons/{cid}/tuning.png")
    assert png.status_code == 200
    assert png.content.startswith(b"\x89PNG")
