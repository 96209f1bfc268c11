"""Identical work is not done twice: a trial already trained is reused at once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.db import make_engine
from core.store.tables import EpochMetric
from tests.support.helpers import small_mlp, tiny_spec, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_identical_trials_are_reused(distributed: Service) -> None:
    spec = {
        **tiny_spec("reuse-first", seeds=[7], epochs=1, variants=[small_mlp("reuse_mlp")]),
        "reuse": True,
    }
    with distributed.client() as client:
        first = client.post("/v1/comparisons", json=spec).json()
        assert wait_done(client, first["id"])["status"] == "succeeded"
        original = client.get(f"/v1/comparisons/{first['id']}/trials").json()["items"][0]

        # Same work under another name, plus one new seed: one trial reused, one trained.
        again = {**spec, "name": "reuse-second", "seeds": [7, 8]}
        resp = client.post("/v1/comparisons", json=again)
        assert resp.status_code == 202
        assert resp.json()["progress"]["trials_succeeded"] == 1
        done = wait_done(client, resp.json()["id"])
        assert done["status"] == "succeeded"
        trials = {
            t["seed"]: t for t in client.get(f"/v1/comparisons/{done['id']}/trials").json()["items"]
        }
        assert trials[7]["reused_from"] == original["id"]
        assert trials[7]["test_accuracy"] == original["test_accuracy"]
        assert trials[7]["attempts"] == 0
        assert trials[8]["reused_from"] is None
        assert trials[8]["attempts"] == 1
        metrics = client.get(f"/v1/comparisons/{done['id']}/metrics").json()["items"]
        assert sorted((m["seed"], m["epoch"]) for m in metrics) == [(7, 1), (8, 1)]
        # The report says which trials were reused, and from which comparison.
        notes = client.get(f"/v1/comparisons/{done['id']}/report").json()["notes"]
        [note] = [n for n in notes if "reuse the result" in n]
        assert note.startswith("1 trial(s) reuse")
        assert f"1 from 'reuse-first' ({first['id']})" in note
        markdown = client.get(f"/v1/comparisons/{done['id']}/report?format=md").text
        assert first["id"] in markdown
        first_notes = client.get(f"/v1/comparisons/{first['id']}/report").json()["notes"]
        assert not [n for n in first_notes if "reuse the result" in n]

        # Everything reused: the comparison is finished at once, nothing is queued.
        whole = client.post("/v1/comparisons", json={**again, "name": "reuse-third"}).json()
        assert whole["status"] == "succeeded"
        assert whole["progress"]["trials_succeeded"] == 2

        # "reuse": false trains again.
        fresh = client.post(
            "/v1/comparisons", json={**spec, "name": "reuse-off", "reuse": False}
        ).json()
        assert fresh["status"] == "queued"
        assert wait_done(client, fresh["id"])["status"] == "succeeded"
        trial = client.get(f"/v1/comparisons/{fresh['id']}/trials").json()["items"][0]
        assert trial["reused_from"] is None
    with Session(make_engine(distributed.env["ARCHBENCH_DATABASE_URL"])) as db:
        copied = db.scalar(
            select(func.count())
            .select_from(EpochMetric)
            .where(EpochMetric.trial_id == trials[7]["id"])
        )
    assert copied == 1
