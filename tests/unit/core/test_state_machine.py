"""The trial and comparison state machine (core.trials.lifecycle, finalize, sweeper) as
database transactions on a migrated SQLite file, the messages read back from the embedded
broker under tmp_path. Postgres' locking and the rounds are in tests/integration/test_rounds.py
and test_recovery_lifecycle.py; here is what the fast tier can show without a service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core.config import Settings, get_settings
from core.spec import ComparisonSpec
from core.store.db import session_scope
from core.store.tables import Comparison, Trial, utcnow
from core.trials.comparisons import create_comparison
from core.trials.finalize import finalize_comparison
from core.trials.lifecycle import claim_trial, finish_trial, release_trial
from core.trials.queue import client_app
from core.trials.sweeper import sweep
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import in_process_database, queued_messages


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    client_app.cache_clear()
    try:
        with in_process_database(f"sqlite:///{tmp_path / 'archbench.db'}", monkeypatch):
            settings = get_settings()
            sweep(settings)  # the first look at a broker re-sends every queued trial: taken
            yield settings
    finally:
        client_app.cache_clear()


def _submit(settings: Settings, seeds: list[int]) -> tuple[str, list[str]]:
    body = tiny_spec("states", seeds=seeds, variants=[small_mlp("a"), small_mlp("b")])
    validated = validate_comparison(ComparisonSpec.model_validate(body), settings)
    with session_scope() as s:
        comparison, ids, _ = create_comparison(
            s, tenant="t", validated=validated, idempotency_key=None, request_hash="h"
        )
    return comparison.id, ids


def _claim(trial_id: str, owner: str, lease_seconds: int = 60) -> bool:
    with session_scope() as s:
        return claim_trial(s, trial_id, owner=owner, worker=owner, lease_seconds=lease_seconds)


def _finish(trial_id: str, owner: str | None, status: str = "succeeded") -> bool:
    with session_scope() as s:
        return finish_trial(s, trial_id, owner=owner, status=status, test_accuracy=0.9)


def _trial(trial_id: str) -> Trial:
    with session_scope() as s:
        return s.get_one(Trial, trial_id)


def _comparison(comparison_id: str) -> Comparison:
    with session_scope() as s:
        return s.get_one(Comparison, comparison_id)


def test_one_owner_claims_a_trial_and_only_its_owner_ends_it(settings: Settings) -> None:
    cid, (first, *_) = _submit(settings, [0])
    assert _claim(first, "w1")
    assert not _claim(first, "w2")  # a duplicate delivery is dropped
    comparison = _comparison(cid)
    assert comparison.status == "running"
    assert not _finish(first, "w2")  # not the lease holder
    assert _finish(first, "w1")
    trial = _trial(first)
    assert (trial.status, trial.attempts, trial.lease_owner) == ("succeeded", 1, None)
    assert not _claim(first, "w3")  # an ended trial is nobody's to run


def test_the_last_trial_ends_the_comparison_succeeded_or_failed(settings: Settings) -> None:
    ok, ok_ids = _submit(settings, [0])
    bad, bad_ids = _submit(settings, [0])
    for trial_id in ok_ids:
        _finish(trial_id, None)
    _finish(bad_ids[0], None)
    with session_scope() as s:
        assert finalize_comparison(s, bad) is None  # one trial is still queued
    _finish(bad_ids[1], None, status="failed")
    with session_scope() as s:
        assert finalize_comparison(s, ok) == "succeeded"
        assert finalize_comparison(s, bad) == "failed"
        assert finalize_comparison(s, ok) is None  # ended once
    failed = _comparison(bad)
    assert failed.error is not None
    assert "b, seed 0" in failed.error["detail"]


def test_the_sweeper_requeues_an_expired_lease_and_sends_it_again(settings: Settings) -> None:
    _, (first, *_) = _submit(settings, [0])
    broker = settings.data_dir / "broker.db"
    before = queued_messages(broker).count(first)
    assert _claim(first, "w1", lease_seconds=-5)  # its worker died: the lease is over
    done = sweep(settings)
    assert done.requeued == [first]
    assert first in done.enqueued
    assert queued_messages(broker).count(first) == before + 1
    trial = _trial(first)
    assert (trial.status, trial.lease_owner) == ("queued", None)
    assert trial.enqueued_at is not None
    assert sweep(settings).enqueued == []  # sent once


def test_the_sweeper_fails_a_trial_that_used_its_attempts(settings: Settings) -> None:
    cid, (first, second) = _submit(settings, [0])
    _finish(second, None)
    with session_scope() as s:
        s.execute(update(Trial).where(Trial.id == first).values(attempts=settings.max_attempts))
    assert _claim(first, "w1", lease_seconds=-5)
    done = sweep(settings)
    assert done.failed == [first]
    assert cid in done.finalized
    comparison = _comparison(cid)
    assert comparison.status == "failed"


def test_a_trial_handed_back_is_sent_by_the_sweeper(settings: Settings) -> None:
    _, (first, *_) = _submit(settings, [0])
    assert _claim(first, "w1")
    with session_scope() as s:
        assert release_trial(s, first, owner="w1")
        s.execute(
            update(Trial).values(created_at=utcnow() - timedelta(minutes=1))
        )  # past the grace a fresh trial gets before the sweeper sends it
    trial = _trial(first)
    assert (trial.status, trial.enqueued_at) == ("queued", None)
    assert first in sweep(settings).enqueued
    trial = _trial(first)
    assert trial.enqueued_at is not None


def test_a_failed_replicate_fails_the_comparison_and_its_message_names_it(
    settings: Settings,
) -> None:
    body = tiny_spec("states", seeds=[0], variants=[small_mlp("a"), small_mlp("b")])
    body["analysis"] = {"probe_size": 16, "replicates": 1}
    validated = validate_comparison(ComparisonSpec.model_validate(body), settings)
    with session_scope() as s:
        comparison, ids, _ = create_comparison(
            s, tenant="t", validated=validated, idempotency_key=None, request_hash="h"
        )
        cid = comparison.id
    replicas = [i for i in ids if _trial(i).replicate == 1]
    assert len(ids) == 4
    assert len(replicas) == 2
    for trial_id in ids:
        _finish(trial_id, None, status="failed" if trial_id == replicas[0] else "succeeded")
    with session_scope() as s:
        assert finalize_comparison(s, cid) == "failed"
    error = _comparison(cid).error
    assert error is not None
    assert "a, seed 0, replicate 1" in error["detail"]
