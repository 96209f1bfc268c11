"""End to end on Postgres + Redis with a real api server and a real Celery worker process."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.config import Settings
from core.spec import ComparisonSpec
from core.store.db import make_engine
from core.store.tables import Comparison, EpochMetric, Trial
from core.trials.comparisons import create_comparison
from core.trials.queue import celery_config, enqueue_trials
from core.trials.validation import validate_comparison
from tests.support.helpers import (
    assert_problem,
    assert_trained,
    small_mlp,
    tiny_spec,
    wait_done,
)
from tests.support.services import Service, fresh_database, in_process_database

pytestmark = [pytest.mark.services, pytest.mark.worker]


def _celery(svc: Service) -> Any:
    from celery import Celery

    app = Celery("test-client")
    app.conf.update(
        celery_config(
            Settings(
                database_url=svc.env["ARCHBENCH_DATABASE_URL"],
                broker_url=svc.env["ARCHBENCH_BROKER_URL"],
            )
        )
    )
    return app


def _db(svc: Service) -> Session:
    return Session(make_engine(svc.env["ARCHBENCH_DATABASE_URL"]))


def test_two_variants_two_seeds_end_to_end(distributed: Service) -> None:
    spec = tiny_spec("e2e")
    with distributed.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        created = resp.json()
        assert resp.headers["location"] == f"/v1/comparisons/{created['id']}"
        assert created["status"] in ("queued", "running")
        assert created["progress"]["trials_total"] == 4
        done = wait_done(client, created["id"])
        assert done["status"] == "succeeded", (done, distributed.log("worker")[-4000:])
        assert done["progress"]["trials_succeeded"] == 4
        assert done["progress"]["epochs_done"] == done["progress"]["epochs_total"] == 8
        assert done["started_at"]
        assert done["finished_at"]

        trials = assert_trained(client, created["id"], spec)
        assert all(t["attempts"] == 1 for t in trials)
        accept_csv = client.get(
            f"/v1/comparisons/{created['id']}/trials", headers={"Accept": "text/csv"}
        )
        assert len(list(csv.DictReader(io.StringIO(accept_csv.text)))) == 4

        listed = client.get("/v1/comparisons", params={"status": "succeeded", "name": "e2e"})
        assert created["id"] in [c["id"] for c in listed.json()["items"]]


def test_bad_spec_creates_nothing(distributed: Service) -> None:
    with _db(distributed) as db:
        before = (
            db.scalar(select(func.count()).select_from(Comparison)),
            db.scalar(select(func.count()).select_from(Trial)),
        )
    bad = tiny_spec("bad")
    bad["variants"][1]["layers"][1]["units"] = -3
    bad["variants"][0]["layers"][0]["kernel_size"] = [40, 40]
    with distributed.client() as client:
        body = assert_problem(client.post("/v1/comparisons", json=bad), 422)
    locs = [e["loc"] for e in body["errors"]]
    assert ["body", "variants", 1, "layers", 1, "units"] in locs
    assert ["body", "variants", 0, "layers", 0, "kernel_size"] in locs
    with _db(distributed) as db:
        after = (
            db.scalar(select(func.count()).select_from(Comparison)),
            db.scalar(select(func.count()).select_from(Trial)),
        )
    assert after == before
    broker = distributed.env["ARCHBENCH_BROKER_URL"]
    import redis

    assert redis.Redis.from_url(broker).llen("archbench") == 0


def test_duplicate_delivery_trains_once(distributed: Service) -> None:
    spec = tiny_spec("dup", seeds=[5], epochs=1, variants=[small_mlp()])
    with distributed.client() as client:
        created = client.post("/v1/comparisons", json=spec).json()
        with _db(distributed) as db:
            trial_id = db.scalar(select(Trial.id).where(Trial.comparison_id == created["id"]))
        assert trial_id
        enqueue_trials([trial_id, trial_id], app=_celery(distributed))
        assert wait_done(client, created["id"])["status"] == "succeeded"
        # Let the extra messages be consumed, then check nothing ran twice.
        import time

        import redis

        r = redis.Redis.from_url(distributed.env["ARCHBENCH_BROKER_URL"])
        deadline = time.monotonic() + 60
        while r.llen("archbench") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        trial = client.get(f"/v1/comparisons/{created['id']}/trials").json()["items"][0]
    assert trial["attempts"] == 1
    assert trial["status"] == "succeeded"
    with _db(distributed) as db:
        n = db.scalar(
            select(func.count()).select_from(EpochMetric).where(EpochMetric.trial_id == trial_id)
        )
    assert n == 1
    assert "duplicate delivery" in distributed.log("worker")


def test_failing_trial_keeps_the_others(distributed: Service) -> None:
    """A trial whose stored architecture cannot be built fails alone, with a problem object."""
    settings = Settings(
        database_url=distributed.env["ARCHBENCH_DATABASE_URL"],
        broker_url=distributed.env["ARCHBENCH_BROKER_URL"],
    )
    spec = ComparisonSpec.model_validate(tiny_spec("one-fails", seeds=[0], epochs=1))
    validated = validate_comparison(spec, settings)
    # Corrupt one variant as stored, as a bug or a bad row would: the worker must contain it.
    validated.spec.variants[1].layers[1]["type"] = "NoSuchLayer"
    with _db(distributed) as db:
        comparison, trial_ids, _ = create_comparison(
            db, tenant="default", validated=validated, idempotency_key=None, request_hash="x"
        )
        comparison_id = comparison.id
    enqueue_trials(trial_ids, app=_celery(distributed))
    with distributed.client() as client:
        done = wait_done(client, comparison_id)
        assert done["status"] == "failed"
        assert done["error"]["title"] == "Some trials failed"
        assert "Traceback" not in str(done["error"])
        trials = {
            t["variant"]: t
            for t in client.get(f"/v1/comparisons/{comparison_id}/trials").json()["items"]
        }
    assert trials["cnn"]["status"] == "succeeded"
    assert trials["cnn"]["test_accuracy"] is not None
    assert trials["mlp"]["status"] == "failed"
    assert trials["mlp"]["error"]["title"] == "Trial failed"
    assert "NoSuchLayer" in trials["mlp"]["error"]["detail"]
    assert "Traceback" not in trials["mlp"]["error"]["detail"]


def _race_claims(engine: Any, trial_id: str) -> dict[str, bool]:
    """Two threads, each on its own connection, claim ``trial_id`` at the same moment."""
    import threading
    import time

    from core.trials.lifecycle import claim_trial

    start = threading.Barrier(2)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def deliver(owner: str) -> None:
        try:
            with Session(engine) as s:
                start.wait(timeout=10)
                results[owner] = claim_trial(
                    s, trial_id, owner=owner, worker=owner, lease_seconds=60
                )
                time.sleep(0.2)  # the winner's claim stays uncommitted while the other tries
                s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def test_concurrent_claims_of_one_trial_have_one_winner() -> None:
    """Two deliveries of one trial arriving at once: exactly one claim succeeds, each time."""
    from core.store.migrate import upgrade

    with fresh_database("archbench_claims") as url:
        upgrade(url)
        spec = ComparisonSpec.model_validate(
            tiny_spec("race", seeds=[0, 1, 2, 3, 4], epochs=1, variants=[small_mlp()])
        )
        engine = make_engine(url)
        try:
            with Session(engine) as db:
                _, trial_ids, _ = create_comparison(
                    db,
                    tenant="default",
                    validated=validate_comparison(spec, Settings(database_url=url)),
                    idempotency_key=None,
                    request_hash="race",
                )
            assert len(trial_ids) == 5
            for trial_id in trial_ids:
                results = _race_claims(engine, trial_id)
                assert sorted(results.values()) == [False, True], results
                winner = next(owner for owner, won in results.items() if won)
                with Session(engine) as db:
                    row = db.get(Trial, trial_id)
                    assert row is not None
                    assert (row.status, row.attempts, row.lease_owner) == ("running", 1, winner)
        finally:
            engine.dispose()


def test_trials_are_committed_before_they_are_enqueued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker may take a message the instant it is sent, so the rows it names must already
    be visible to other connections. The real enqueue is wrapped (not replaced): just before
    it sends, a separate connection looks for the comparison and its trials."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.trials import dispatch as dispatching
    from core.trials.queue import client_app

    broker = tmp_path / "broker.db"  # the embedded SQL broker: real, and nobody consumes it
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_BROKER_URL", f"sqla+sqlite:///{broker}")
    monkeypatch.setenv("ARCHBENCH_ALLOW_NO_AUTH", "true")  # keys are not what this tests
    # Every trial sent at once (no per-tenant share), so all four are checked before theirs.
    monkeypatch.setenv("ARCHBENCH_DISPATCH_PER_TENANT", "0")
    seen: list[tuple[int, int]] = []
    real_enqueue = enqueue_trials  # what the submit route's dispatch sends with

    with fresh_database("archbench_enqueue") as url, in_process_database(url, monkeypatch):
        outside = make_engine(url)

        def enqueue_after_commit(trial_ids: list[str], app: Any = None) -> list[str]:
            with outside.connect() as conn:  # not the request's session
                trials = conn.execute(
                    select(Trial.comparison_id).where(Trial.id.in_(trial_ids))
                ).all()
                comparisons = conn.scalar(
                    select(func.count())
                    .select_from(Comparison)
                    .where(Comparison.id.in_({t.comparison_id for t in trials}))
                )
            seen.append((len(trials), comparisons or 0))
            return real_enqueue(trial_ids, app)

        monkeypatch.setattr(dispatching, "enqueue_trials", enqueue_after_commit)
        client_app.cache_clear()
        try:
            with TestClient(create_app()) as client:
                resp = client.post("/v1/comparisons", json=tiny_spec("commit-first"))
        finally:
            client_app.cache_clear()
            outside.dispose()
    assert resp.status_code == 202, resp.text
    assert seen == [(4, 1)]  # all four trials and their comparison, before the first send
    queued = make_engine(f"sqlite:///{broker}")
    try:
        with queued.connect() as conn:
            sent = conn.scalar(
                text(
                    "SELECT count(*) FROM kombu_message m JOIN kombu_queue q "
                    "ON m.queue_id = q.id WHERE q.name = 'archbench'"
                )
            )
    finally:
        queued.dispose()
    assert sent == 4  # and the wrapped call really sent them
