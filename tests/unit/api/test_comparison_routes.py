"""The comparison routes in process: FastAPI's TestClient on a migrated SQLite database and the
embedded broker under tmp_path, whose messages are read back (no worker takes them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.store.db import session_scope
from core.store.tables import Comparison, Trial
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api, queued_messages


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _spec(name: str = "routes") -> dict[str, object]:
    return tiny_spec(name, seeds=[0, 1], variants=[small_mlp("a"), small_mlp("b")])


def _trials(comparison_id: str) -> list[tuple[str, int, str, bool]]:
    """(id, seed, variant, sent) of each trial, in queue order."""
    with session_scope() as s:
        rows = s.execute(
            select(Trial.id, Trial.seed, Trial.variant, Trial.enqueued_at)
            .where(Trial.comparison_id == comparison_id)
            .order_by(Trial.seed, Trial.variant_index)
        )
        return [(i, int(seed), v, sent is not None) for i, seed, v, sent in rows]


def test_a_submit_stores_the_trials_and_sends_each_once_after_the_commit(
    client: TestClient, tmp_path: Path
) -> None:
    resp = client.post("/v1/comparisons", json=_spec())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert resp.headers["location"] == f"/v1/comparisons/{body['id']}"
    assert (body["status"], body["progress"]["trials_queued"]) == ("queued", 4)
    trials = _trials(body["id"])
    assert [(seed, v) for _, seed, v, _ in trials] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    # The tenant's share of the broker (ARCHBENCH_DISPATCH_PER_TENANT, 1) is sent; the rest
    # wait unsent and go as the tenant's trials are claimed.
    assert [sent for *_, sent in trials] == [True, False, False, False]
    assert queued_messages(tmp_path / "broker.db") == [t[0] for t in trials[:1]]
    assert client.get(f"/v1/comparisons/{body['id']}").json()["id"] == body["id"]
    listed = client.get("/v1/comparisons").json()
    assert [c["id"] for c in listed["items"]] == [body["id"]]


def test_a_replayed_idempotency_key_answers_the_first_comparison_and_sends_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    key = {"Idempotency-Key": "once"}
    first = client.post("/v1/comparisons", json=_spec(), headers=key)
    again = client.post("/v1/comparisons", json=_spec(), headers=key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert len(queued_messages(tmp_path / "broker.db")) == 1  # the tenant's share, once
    other = client.post("/v1/comparisons", json=_spec("changed"), headers=key)
    assert_problem(other, 422)


def test_bad_input_is_a_located_problem_and_stores_and_sends_nothing(
    client: TestClient, tmp_path: Path
) -> None:
    spec = _spec()
    spec["training"] = {"epochs": 0}
    problem = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    assert ["body", "training", "epochs"] in [e["loc"] for e in problem["errors"]]
    spec = _spec()
    spec["variants"] = [small_mlp("same"), small_mlp("same")]
    problem = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    assert any(e["loc"][:2] == ["body", "variants"] for e in problem["errors"]), problem
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Comparison)) == 0
    assert queued_messages(tmp_path / "broker.db") == []


def test_a_cancel_ends_the_queued_trials_and_a_second_is_a_conflict(client: TestClient) -> None:
    created = client.post("/v1/comparisons", json=_spec()).json()
    resp = client.post(f"/v1/comparisons/{created['id']}/cancel")
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "cancelled"
    with session_scope() as s:
        states = s.scalars(select(Trial.status).where(Trial.comparison_id == created["id"]))
        assert set(states) == {"cancelled"}
    assert_problem(client.post(f"/v1/comparisons/{created['id']}/cancel"), 409)


@pytest.mark.parametrize("comparison_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_comparison_is_a_404_problem(client: TestClient, comparison_id: str) -> None:
    assert_problem(client.get(f"/v1/comparisons/{comparison_id}"), 404)
    assert_problem(client.post(f"/v1/comparisons/{comparison_id}/cancel"), 404)
