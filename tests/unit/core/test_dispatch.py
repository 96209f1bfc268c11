"""core.trials.dispatch: trials recorded in a unit of work are sent by one hook when it commits,
on a real SQLite database and the real embedded (SQL) Celery broker, whose messages are read
back from its table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.spec import ComparisonSpec
from core.store.tables import Base, Comparison, Trial
from core.trials.comparisons import create_comparison
from core.trials.dispatch import outbox, send_after_commit, top_up
from core.trials.planning import build_trials
from core.trials.queue import client_app
from core.trials.validation import ValidatedComparison, validate_comparison
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import queued_messages

Messages = Callable[[], list[str]]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file with every table (the stamp is written by a session of its own)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'archbench.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Messages]:
    """Point the client app at an embedded broker under tmp_path; returns a reader of the
    trial ids of the messages it holds, in the order they were sent."""
    broker = tmp_path / "broker.db"
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_BROKER_URL", f"sqla+sqlite:///{broker}")
    # The hook's own guarantees, without the tenants' share (tested below with a cap of its own).
    monkeypatch.setenv("ARCHBENCH_DISPATCH_PER_TENANT", "0")
    get_settings.cache_clear()
    client_app.cache_clear()

    yield lambda: queued_messages(broker)
    client_app.cache_clear()
    get_settings.cache_clear()


def _validated(seeds: list[int]) -> ValidatedComparison:
    body = tiny_spec("sent", seeds=seeds, variants=[small_mlp("a"), small_mlp("b")])
    return validate_comparison(ComparisonSpec.model_validate(body), get_settings())


def _queued_trials(s: Session, seeds: list[int], tenant: str = "a") -> list[str]:
    """A comparison and its queued trials, added to ``s`` (not committed)."""
    validated = _validated(seeds)
    comparison = Comparison(
        tenant=tenant, name="c", status="queued", spec=validated.spec, analyses=validated.analyses
    )
    s.add(comparison)
    s.flush()
    trials = build_trials(comparison.id, validated.spec, validated.analyses, seeds)
    s.add_all(trials)
    return [t.id for t in trials]


def _stamped(engine: Engine) -> dict[str, bool]:
    with Session(engine) as s:
        return {i: e is not None for i, e in s.execute(select(Trial.id, Trial.enqueued_at))}


def test_a_commit_sends_each_recorded_trial_exactly_once_in_order(
    engine: Engine, messages: Messages
) -> None:
    with Session(engine) as s:
        ids = _queued_trials(s, [0, 1])
        send_after_commit(s, ids[:2])
        send_after_commit(s, ids)  # recorded twice: sent once
        assert messages() == []  # nothing before the commit
        s.commit()
        assert messages() == ids
        assert outbox(s).sent == outbox(s).committed == ids
        s.commit()  # a later commit of the same session has nothing left to send
    assert messages() == ids
    assert _stamped(engine) == dict.fromkeys(ids, True)


def test_a_rollback_sends_nothing_and_forgets_what_it_recorded(
    engine: Engine, messages: Messages
) -> None:
    with Session(engine) as s:
        ids = _queued_trials(s, [0])
        send_after_commit(s, ids)
        s.rollback()
        kept = _queued_trials(s, [1])  # the same session's next transaction commits
        s.commit()
    assert messages() == []  # the rolled-back ids were forgotten, the new ones never recorded
    assert _stamped(engine) == dict.fromkeys(kept, False)  # never sent: the sweeper's to send


def test_a_released_savepoint_waits_for_the_outer_commit(
    engine: Engine, messages: Messages
) -> None:
    with Session(engine) as s:
        with s.begin_nested():
            ids = _queued_trials(s, [0])
            send_after_commit(s, ids)
        assert messages() == []
        s.commit()
    assert messages() == ids


def test_a_trial_a_worker_already_started_is_sent_but_not_stamped(
    engine: Engine, messages: Messages
) -> None:
    with Session(engine) as s:
        ids = _queued_trials(s, [0])
        s.commit()
        s.get_one(Trial, ids[0]).status = "running"
        send_after_commit(s, ids)
        s.commit()
    assert messages() == ids
    assert _stamped(engine) == {ids[0]: False, ids[1]: True}


def test_create_comparison_commits_then_sends_its_trials_seed_major(
    engine: Engine, messages: Messages
) -> None:
    validated = _validated([0, 1])
    with Session(engine) as s:
        comparison, ids, created = create_comparison(
            s, tenant="a", validated=validated, idempotency_key="k", request_hash="h"
        )
        again = create_comparison(
            s, tenant="a", validated=validated, idempotency_key="k", request_hash="h"
        )
    assert created
    assert again[1:] == ([], False)  # the replay sends nothing
    assert messages() == ids
    with Session(engine) as s:
        order = [(int(t.seed), t.variant) for t in (s.get_one(Trial, i) for i in ids)]
    assert order == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert _stamped(engine) == dict.fromkeys(ids, True)
    assert comparison.id


@pytest.fixture
def share_of_two(messages: Messages, monkeypatch: pytest.MonkeyPatch) -> Iterator[Messages]:
    """The embedded broker of ``messages``, with at most two of a tenant's trials in it."""
    monkeypatch.setenv("ARCHBENCH_DISPATCH_PER_TENANT", "2")
    get_settings.cache_clear()
    yield messages
    get_settings.cache_clear()


def test_each_tenant_gets_at_most_its_share_in_the_broker(
    engine: Engine, share_of_two: Messages
) -> None:
    with Session(engine) as s:
        backlog = _queued_trials(s, [0, 1, 2], tenant="a")  # six trials
        s.commit()
        newcomer = _queued_trials(s, [0], tenant="b")
        send_after_commit(s, backlog)
        s.commit()
        send_after_commit(s, newcomer)
        s.commit()
    # b's trials are not behind a's whole backlog, only behind a's share of two.
    assert share_of_two() == [*backlog[:2], *newcomer]
    assert _stamped(engine) == {
        **dict.fromkeys(backlog[:2], True),
        **dict.fromkeys(backlog[2:], False),  # unsent: sent as a's trials are claimed
        **dict.fromkeys(newcomer, True),
    }
    with Session(engine) as s:
        send_after_commit(s, backlog)  # the sweeper's unsent pass, say: a has no share free
        s.commit()
        assert outbox(s).sent == backlog[:2]  # the two stamped ones are re-sends, never held
    assert share_of_two() == [*backlog[:2], *newcomer, *backlog[:2]]


def test_a_claim_tops_up_the_tenants_next_trials_in_queue_order(
    engine: Engine, share_of_two: Messages
) -> None:
    with Session(engine) as s:
        first = _queued_trials(s, [0, 1, 2], tenant="a")
        send_after_commit(s, first)
        s.commit()
        later = _queued_trials(s, [0], tenant="a")  # a later comparison of the same tenant
        s.commit()
    assert share_of_two() == first[:2]
    with Session(engine) as s:
        s.get_one(Trial, first[0]).status = "running"  # a worker claims one of the two
        assert top_up(s, "a") == first[2:4]  # oldest comparison first, queue order
        s.commit()
    assert share_of_two() == first[:3]  # one slot came free: one more is sent
    with Session(engine) as s:
        for trial_id in first[1:3]:
            s.get_one(Trial, trial_id).status = "running"
        top_up(s, "a")
        s.commit()
    assert share_of_two() == [*first[:5]]
    assert _stamped(engine)[later[0]] is False  # behind the older comparison's trials
