"""core.trials.dispatch on the distributed parts: Postgres and a Redis broker of this test's
own (nobody consumes its queue), through the submit path's own create_comparison. The same
rules on SQLite and the embedded broker are in tests/unit/core/test_dispatch.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import get_settings
from core.spec import ComparisonSpec
from core.store.db import session_scope
from core.store.tables import Comparison, Trial
from core.trials.comparisons import create_comparison
from core.trials.dispatch import send_after_commit
from core.trials.planning import build_trials
from core.trials.queue import QUEUE, client_app
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import fresh_database, in_process_database
from tests.support.stack import PrivateRedis

pytestmark = pytest.mark.services


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateRedis]:
    """A migrated Postgres database and a private Redis, this process's settings on both."""
    redis = PrivateRedis(tmp_path / "redis.log")
    redis.start()
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_BROKER_URL", redis.url)
    client_app.cache_clear()
    try:
        with fresh_database("archbench_dispatch") as url, in_process_database(url, monkeypatch):
            yield redis
    finally:
        client_app.cache_clear()
        redis.stop()


def _sent(redis: PrivateRedis) -> list[str]:
    """The trial ids of the messages in the queue, oldest first (Celery LPUSHes them)."""
    import redis as redis_client

    raw = redis_client.Redis.from_url(redis.url).lrange(QUEUE, 0, -1)
    return [json.loads(m)["headers"]["argsrepr"].strip("[]'") for m in reversed(raw)]


def _submit(key: str) -> tuple[str, list[str]]:
    body = tiny_spec("live", seeds=[0, 1], variants=[small_mlp("a"), small_mlp("b")])
    validated = validate_comparison(ComparisonSpec.model_validate(body), get_settings())
    with session_scope() as s:
        comparison, ids, _ = create_comparison(
            s, tenant="t", validated=validated, idempotency_key=key, request_hash=key
        )
        return comparison.id, ids


def test_a_commit_sends_each_trial_once_and_a_replay_sends_nothing(
    broker: PrivateRedis,
) -> None:
    cid, ids = _submit("k")
    assert len(ids) == 4
    # The tenant's share (ARCHBENCH_DISPATCH_PER_TENANT, 1) is sent; the rest wait unsent.
    assert _sent(broker) == ids[:1]
    assert _submit("k") == (cid, [])  # the replay answers the first and sends nothing
    assert _sent(broker) == ids[:1]
    with session_scope() as s:
        rows = s.execute(select(Trial.id, Trial.enqueued_at).where(Trial.id.in_(ids))).all()
        stamped = {i: e for i, e in rows}
        assert [stamped[i] is not None for i in ids] == [True, False, False, False]


def test_a_unit_of_work_that_fails_after_recording_its_trials_sends_nothing(
    broker: PrivateRedis,
) -> None:
    validated = validate_comparison(
        ComparisonSpec.model_validate(tiny_spec("undone", seeds=[0])), get_settings()
    )

    class Undo(Exception):
        pass

    def fail_after_recording() -> None:
        with session_scope() as s:
            comparison = Comparison(tenant="t", name="undone", spec=validated.spec)
            s.add(comparison)
            s.flush()
            trials = build_trials(comparison.id, validated.spec, validated.analyses, [0])
            s.add_all(trials)
            send_after_commit(s, [t.id for t in trials])
            raise Undo  # session_scope rolls back

    with pytest.raises(Undo):
        fail_after_recording()
    assert _sent(broker) == []
    with session_scope() as s:
        assert s.scalars(select(Comparison.id)).all() == []
    _, ids = _submit("after")  # the next unit of work sends its own trials only (its share)
    assert _sent(broker) == ids[:1]
