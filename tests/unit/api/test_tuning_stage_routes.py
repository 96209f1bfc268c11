"""The tuning stage through the api (TestClient on SQLite, the embedded broker): a tuned
submit queues the first tuning step (stage and config listed by /trials, sent after the
commit), counts every planned trial in its progress, refuses a bad block at its field, and a
cancel ends the tuning trials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.config import get_settings
from core.store.db import session_scope
from core.store.tables import EpochMetric, Trial
from core.trials.sweeper import sweep
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import in_process_api, queued_messages


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("sqlite", tmp_path, monkeypatch) as c:
        yield c


def _spec(**tuning: Any) -> dict[str, Any]:
    body = tiny_spec("tuned", seeds=[0, 1], epochs=2, variants=[small_mlp("a"), small_mlp("b")])
    body["dataset"] = {**body["dataset"], "split": "fixed"}  # tuning needs one fixed split
    body["tuning"] = {
        "space": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}},
        "trials": 3,
        "epochs": 1,
        **tuning,
    }
    return body


def test_a_tuned_submit_queues_the_first_tuning_step(client: TestClient, tmp_path: Path) -> None:
    resp = client.post("/v1/comparisons", json=_spec())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    # 2 variants x (3 tuning trials + 2 seeds); epochs 2 x (3 x 1 + 2 x 2).
    assert (body["progress"]["trials_total"], body["progress"]["epochs_total"]) == (10, 14)
    assert body["spec"]["tuning"]["trials"] == 3
    trials = client.get(f"/v1/comparisons/{body['id']}/trials").json()["items"]
    assert [(t["variant"], t["stage"], t["status"]) for t in trials] == [
        ("a", "tuning", "queued"),
        ("b", "tuning", "queued"),
    ]
    assert all(set(t["config"]) == {"learning_rate"} for t in trials)
    assert all(t["seed"] == 2**31 - 1 and t["epochs_planned"] == 1 for t in trials)
    assert queued_messages(tmp_path / "broker.db") == [trials[0]["id"]]
    csv = client.get(f"/v1/comparisons/{body['id']}/trials?format=csv").text
    header, first = csv.splitlines()[:2]
    assert "stage" in header.split(",")
    assert "config" in header.split(",")
    assert ",tuning," in first


def test_a_bad_tuning_block_is_a_located_422(client: TestClient) -> None:
    problem = assert_problem(client.post("/v1/comparisons", json=_spec(epochs=2)), 422)
    assert ["body", "tuning", "epochs"] in [e["loc"] for e in problem["errors"]]
    bad_knob = _spec(space={"dropout.none": {"uniform": [0.1, 0.2]}})
    problem = assert_problem(client.post("/v1/comparisons", json=bad_knob), 422)
    assert ["body", "tuning", "space", "dropout.none"] in [e["loc"] for e in problem["errors"]]


def test_a_cancel_ends_the_tuning_trials(client: TestClient) -> None:
    created = client.post("/v1/comparisons", json=_spec()).json()
    assert client.post(f"/v1/comparisons/{created['id']}/cancel").status_code == 202
    trials = client.get(f"/v1/comparisons/{created['id']}/trials").json()["items"]
    assert [(t["stage"], t["status"]) for t in trials] == [("tuning", "cancelled")] * 2
    assert client.get(f"/v1/comparisons/{created['id']}").json()["status"] == "cancelled"


def test_the_sweeper_asks_a_step_whose_deciding_worker_died(client: TestClient) -> None:
    created = client.post("/v1/comparisons", json=_spec()).json()
    cid = created["id"]
    first = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    # Both tuning trials ended, but the worker died before its finalize asked the next step.
    with session_scope() as s:
        for i, t in enumerate(first):
            row = s.get(Trial, t["id"])
            assert row is not None
            row.status, row.epochs_done = "succeeded", 1
            s.add(EpochMetric(trial_id=t["id"], epoch=1, values={"val_accuracy": 0.5 + i / 10}))
    done = sweep(get_settings())
    assert cid in done.rounds_added
    trials = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    fresh = [t for t in trials if t["status"] == "queued"]
    assert [(t["variant"], t["stage"], t["seed"]) for t in fresh] == [
        ("a", "tuning", 2**31 - 2),
        ("b", "tuning", 2**31 - 2),
    ]
    assert fresh[0]["id"] in done.enqueued
    assert sweep(get_settings()).rounds_added == []  # asked once
