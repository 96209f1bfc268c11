"""The report, its formats and the similarity are computed once per state of the comparison's
rows and served as stored (core.report.stored), on a migrated SQLite database in process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from core.report.build import build_report
from core.report.load import load_differences, load_report
from core.report.render import render_markdown
from core.report.schema import Report
from core.report.similarity import similarity
from core.store.db import session_scope
from core.store.tables import Comparison, StoredReport, Trial
from tests.support.finished import finished_comparison
from tests.support.services import in_process_api


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The comparison ids the report builder ran for (every computation of a report)."""
    seen: list[str] = []
    real: Callable[..., dict[str, Any]] = build_report

    def counted(**kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs["comparison_id"])
        return real(**kwargs)

    monkeypatch.setattr("core.report.load.build_report", counted)
    return seen


def _finished(**kw: Any) -> str:
    with session_scope() as s:
        return finished_comparison(s, probe=12, **kw).id


def _computed_now(cid: str) -> tuple[dict[str, Any], str]:
    """The report as the rows give it now (load_report in one session), in the JSON the api
    sent before reports were stored, and its Markdown."""
    with session_scope() as s:
        comparison = s.get(Comparison, cid)
        assert comparison is not None
        report, _ = load_report(s, comparison)
    served = jsonable_encoder(Report.model_validate(report))
    return served, render_markdown(report, title=comparison.name)


def test_a_report_is_built_once_and_every_format_is_served_from_the_stored_one(
    client: TestClient, builds: list[str]
) -> None:
    cid = _finished()
    first = client.get(f"/v1/comparisons/{cid}/report")
    assert first.status_code == 200, first.text
    assert builds == [cid]
    for path in ("report", "report?format=md", "report?format=csv", "report.png"):
        for _ in range(3):
            resp = client.get(f"/v1/comparisons/{cid}/{path}")
            assert resp.status_code == 200, resp.text
    assert client.get(f"/v1/comparisons/{cid}/report?format=csv&table=pairwise").status_code == 200
    assert builds == [cid]  # 13 reads, one computation
    assert client.get(f"/v1/comparisons/{cid}/report").json() == first.json()
    served, markdown = _computed_now(cid)
    assert first.json() == served
    assert first.headers["content-type"] == "application/json"
    assert client.get(f"/v1/comparisons/{cid}/report?format=md").text == markdown
    with session_scope() as s:
        kinds = set(s.scalars(select(StoredReport.kind).where(StoredReport.comparison_id == cid)))
    assert kinds == {"report", "differences"}


def test_a_change_of_the_rows_computes_the_report_again(
    client: TestClient, builds: list[str]
) -> None:
    cid = _finished(status="running")
    before = client.get(f"/v1/comparisons/{cid}/report").json()
    assert before["interim"] is True
    with session_scope() as s:
        s.execute(update(Comparison).where(Comparison.id == cid).values(status="succeeded"))
    after = client.get(f"/v1/comparisons/{cid}/report").json()
    assert (after["interim"], after["final"], len(builds)) == (False, True, 2)
    with session_scope() as s:
        trial_id = s.scalars(select(Trial.id).where(Trial.comparison_id == cid).limit(1)).one()
        s.execute(update(Trial).where(Trial.id == trial_id).values(test_accuracy=0.123))
        s.execute(update(Trial).where(Trial.id == trial_id).values(status="failed"))
    again = client.get(f"/v1/comparisons/{cid}/report").json()
    assert len(builds) == 3
    assert again == _computed_now(cid)[0]
    assert again != after


def test_the_differences_are_kept_while_only_the_epochs_change(
    client: TestClient, builds: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[str] = []
    real = load_differences

    def counted(session: Any, comparison: Comparison) -> list[dict[str, Any]]:
        computed.append(comparison.id)
        return real(session, comparison)

    monkeypatch.setattr("core.report.stored.load_differences", counted)
    cid = _finished(status="running")
    client.get(f"/v1/comparisons/{cid}/report")
    with session_scope() as s:
        s.execute(update(Comparison).where(Comparison.id == cid).values(epochs_total=99))
    client.get(f"/v1/comparisons/{cid}/report")
    assert (len(builds), len(computed)) == (2, 1)


def test_the_similarity_is_computed_once_per_pair(client: TestClient) -> None:
    import core.report.stored as stored

    cid = _finished()
    before = stored.COMPUTED.copy()
    first = client.get(f"/v1/comparisons/{cid}/similarity?a=v0&b=v1")
    assert first.status_code == 200, first.text
    for _ in range(3):
        assert client.get(f"/v1/comparisons/{cid}/similarity?a=v0&b=v1").json() == first.json()
        assert client.get(f"/v1/comparisons/{cid}/similarity.png?a=v0&b=v1").status_code == 200
    client.get(f"/v1/comparisons/{cid}/similarity?a=v1&b=v0")
    grown = stored.COMPUTED - before
    assert dict(grown) == {
        stored.similarity_kind("v0", "v1"): 1,
        stored.similarity_kind("v1", "v0"): 1,
    }
    with session_scope() as s:
        expected = similarity(s, cid, "v0", "v1")
    assert first.json() == json.loads(json.dumps(expected))
    assert first.json()["cka"] is not None


def test_the_workers_refresh_leaves_nothing_for_a_get_to_compute(
    client: TestClient, builds: list[str]
) -> None:
    from core.report.stored import refresh

    cid = _finished()
    refresh(cid)
    assert builds == [cid]
    for path in ("report", "report?format=md", "report.png"):
        assert client.get(f"/v1/comparisons/{cid}/{path}").status_code == 200
    assert builds == [cid]


def test_a_report_not_to_be_stored_is_computed_and_left_unstored(
    client: TestClient, builds: list[str]
) -> None:
    from core.report.stored import stored_report

    with session_scope() as s:
        cid = finished_comparison(s).id
    first = stored_report(cid, store=False)
    assert stored_report(cid, store=False).report == first.report
    assert builds == [cid, cid]
    with session_scope() as s:
        assert s.scalars(select(StoredReport).where(StoredReport.comparison_id == cid)).all() == []


def test_an_unknown_comparison_is_still_a_404(client: TestClient) -> None:
    resp = client.get("/v1/comparisons/00000000-0000-0000-0000-000000000000/report")
    assert resp.status_code == 404
