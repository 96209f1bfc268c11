"""Idempotency-Key under concurrency, and the per-trial time budget, on the real stack."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.store.db import make_engine
from core.store.tables import Comparison, EpochMetric, Trial
from tests.support.helpers import assert_problem, small_mlp, tiny_spec, wait_done
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_twenty_concurrent_posts_with_one_key_create_one_comparison(distributed: Service) -> None:
    spec = tiny_spec("idempotent", seeds=[0], epochs=1, variants=[small_mlp()])
    key = f"k-{uuid.uuid4().hex}"

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{distributed.url}/v1/comparisons",
            json=spec,
            headers={"Idempotency-Key": key},
            timeout=60,
        )

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    (cid,) = ids
    engine = make_engine(distributed.env["ARCHBENCH_DATABASE_URL"])
    with Session(engine) as db:
        assert db.scalar(select(func.count()).where(Comparison.idempotency_key == key)) == 1
        assert db.scalar(select(func.count()).where(Trial.comparison_id == cid)) == 1
    with distributed.client() as client:
        assert wait_done(client, cid)["status"] == "succeeded"
        (trial,) = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
        assert trial["attempts"] == 1

        other = {**spec, "name": "another body"}
        body = assert_problem(
            client.post("/v1/comparisons", json=other, headers={"Idempotency-Key": key}), 422
        )
        assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    engine.dispose()


def test_time_budget_stops_a_trial_and_keeps_its_epochs(distributed: Service) -> None:
    spec = tiny_spec("budget", seeds=[0], epochs=500, variants=[small_mlp()])
    spec["training"]["max_seconds"] = 2
    with distributed.client() as client:
        cid = client.post("/v1/comparisons", json=spec).json()["id"]
        done = wait_done(client, cid, timeout=120)
        assert done["status"] == "succeeded"
        (trial,) = client.get(f"/v1/comparisons/{cid}/trials").json()["items"]
    assert trial["stop_reason"] == "time_budget"
    assert 0 < trial["epochs_done"] < 500
    engine = make_engine(distributed.env["ARCHBENCH_DATABASE_URL"])
    with Session(engine) as db:
        epochs = list(
            db.scalars(select(EpochMetric.epoch).where(EpochMetric.trial_id == trial["id"]))
        )
    engine.dispose()
    assert sorted(epochs) == list(range(1, trial["epochs_done"] + 1))


def test_a_time_budget_over_the_ceiling_is_a_located_422(distributed: Service) -> None:
    spec = tiny_spec("over-budget", seeds=[0], epochs=1, variants=[small_mlp()])
    spec["training"]["max_seconds"] = 24 * 3600 + 1  # ARCHBENCH_TRIAL_MAX_SECONDS: 86400
    with distributed.client() as client:
        body = assert_problem(client.post("/v1/comparisons", json=spec), 422)
    (error,) = [e for e in body["errors"] if e["loc"][-1] == "max_seconds"]
    assert error["loc"] == ["body", "training", "max_seconds"]
    assert "86401 s" in error["msg"]
    assert "86400 s" in error["msg"]
