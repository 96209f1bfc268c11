"""A report that is computed holds no pooled connection while it computes (Postgres, in process).

The api runs with a pool of one connection (``ARCHBENCH_DB_POOL_SIZE=1``, no overflow). The
report's builder is held (an event) while a second request is made: before reports were
stored, ``/report`` computed inside the request's session and the other request waited
``ARCHBENCH_DB_POOL_TIMEOUT`` for the one connection and got a 503; now the rows are read in
short sessions and the computation holds none, so the other request answers at once. A second
GET of the stored report does not compute it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.report.build import build_report
from core.store.db import session_scope
from tests.support.finished import finished_comparison
from tests.support.services import in_process_api

pytestmark = pytest.mark.services

POOL_TIMEOUT = 2


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("ARCHBENCH_DB_POOL_SIZE", "1")
    monkeypatch.setenv("ARCHBENCH_DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("ARCHBENCH_DB_POOL_TIMEOUT", str(POOL_TIMEOUT))
    with in_process_api("postgres", tmp_path, monkeypatch) as c:
        yield c


def test_a_report_being_computed_leaves_the_one_connection_to_other_requests(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as s:
        cid = finished_comparison(s, n_test=300, probe=12).id
    computing, release = threading.Event(), threading.Event()
    builds: list[str] = []

    def held(**kwargs: Any) -> dict[str, Any]:
        builds.append(kwargs["comparison_id"])
        computing.set()
        release.wait(30)
        return build_report(**kwargs)

    monkeypatch.setattr("core.report.load.build_report", held)
    answers: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(client.get(f"/v1/comparisons/{cid}/report"))
    )
    first.start()
    try:
        assert computing.wait(60), "the report was never computed"
        start = time.monotonic()
        other = client.get(f"/v1/comparisons/{cid}/trials")
        waited = time.monotonic() - start
    finally:
        release.set()
        first.join(60)
    assert other.status_code == 200, other.text
    assert waited < POOL_TIMEOUT / 2, waited
    assert [a.status_code for a in answers] == [200]
    assert client.get(f"/v1/comparisons/{cid}/report").json() == answers[0].json()
    assert builds == [cid]
