"""Adaptive seeds: the rounds of a comparison as database transactions, on real Postgres and
SQLite, with no worker process.

The decision to add a round belongs to the report (``core.report.build.needs_more_seeds``, tested
with the statistics); these tests replace it with a stand-in that says yes or no, to test what
this module owns: a round is added once, seed-major, up to ``max``, the comparison stays open
between rounds, a failure or cancel ends it, the sweeper adds a round whose decision was lost,
and a round another comparison already trained is reused. Live tests on a real worker, with the
real decision, are in test_rounds_live.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

import core.report.build
from core.config import Settings, get_settings
from core.spec import ComparisonSpec
from core.store.db import session_scope
from core.store.tables import Comparison, Trial
from core.trials.comparisons import cancel_comparison, create_comparison
from core.trials.dispatch import outbox
from core.trials.finalize import finalize_comparison
from core.trials.queue import client_app
from core.trials.sweeper import sweep
from core.trials.validation import validate_comparison
from tests.support.helpers import small_cnn, small_mlp
from tests.support.services import fresh_database, in_process_database

pytestmark = [pytest.mark.services]


@pytest.fixture(params=["postgresql", "sqlite"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    client_app.cache_clear()  # commits send to this test's embedded broker, under tmp_path
    try:
        if request.param == "postgresql":
            with fresh_database("archbench_rounds") as url, in_process_database(url, monkeypatch):
                yield get_settings()
        else:
            with in_process_database(f"sqlite:///{tmp_path / 'rounds.db'}", monkeypatch):
                yield get_settings()
    finally:
        client_app.cache_clear()


Decision = Callable[[Any], bool]


@pytest.fixture
def decide(monkeypatch: pytest.MonkeyPatch) -> Callable[[Decision], list[Any]]:
    """Install a stand-in for the report's decision; returns the reports it was asked about."""

    def install(fn: Decision) -> list[Any]:
        asked: list[Any] = []

        def stand_in(report: Any) -> bool:
            asked.append(report)
            return fn(report)

        monkeypatch.setattr(core.report.build, "needs_more_seeds", stand_in)
        return asked

    return install


SENT: dict[str, list[str]] = {}  # comparison id -> the trial ids create_comparison queues


def submit(settings: Settings, seeds: Any, *, reuse: bool = False, variants: int = 2) -> str:
    body = {
        "name": "rounds",
        "dataset": {"name": "mnist_5k", "max_samples": 300},
        "training": {"epochs": 2},
        "seeds": seeds,
        "reuse": reuse,
        "variants": [small_cnn("a"), small_mlp("b"), small_mlp("c")][:variants],
    }
    validated = validate_comparison(ComparisonSpec.model_validate(body), settings)
    with session_scope() as s:
        comparison, ids, _ = create_comparison(
            s, tenant="default", validated=validated, idempotency_key=None, request_hash="h"
        )
        SENT[comparison.id] = ids
        return comparison.id


def rows(cid: str) -> list[tuple[int, str, str]]:
    """(seed, variant, status) of every trial, in creation (queue) order."""
    with session_scope() as s:
        return [
            (int(t.seed), t.variant, t.status)
            for t in s.scalars(
                select(Trial)
                .where(Trial.comparison_id == cid)
                .order_by(Trial.created_at, Trial.seed, Trial.variant_index)
            )
        ]


def end_all(cid: str, status: str = "succeeded") -> None:
    """End every queued trial as a worker would have (a result, no finalize)."""
    with session_scope() as s:
        s.execute(
            update(Trial)
            .where(Trial.comparison_id == cid, Trial.status == "queued")
            .values(
                status=status,
                test_accuracy=0.5 + 0.01 * Trial.seed,
                test_loss=1.0,
                epochs_done=2,
            )
        )


def finalize(cid: str) -> tuple[str | None, list[str]]:
    """Finalize as a worker does; returns the status and the ids of the round its commit sent."""
    with session_scope() as s:
        box = outbox(s)
        status = finalize_comparison(s, cid)
    return status, box.committed


def comparison(cid: str) -> Comparison:
    with session_scope() as s:
        return s.get_one(Comparison, cid)


def test_rounds_add_step_seeds_seed_major_up_to_max(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    asked = decide(lambda report: True)
    cid = submit(db, {"min": 2, "max": 5, "step": 2}, variants=3)
    assert rows(cid) == [(s, v, "queued") for s in (0, 1) for v in ("a", "b", "c")]
    # The api enqueues these ids in this order: seed-major, the variants interleaved.
    with session_scope() as s:
        order = [(int(t.seed), t.variant) for t in (s.get_one(Trial, i) for i in SENT[cid])]
    assert order == [(s, v) for s in (0, 1) for v in ("a", "b", "c")]
    c = comparison(cid)
    assert (c.trials_total, c.epochs_total) == (6, 12)
    assert c.spec.round_progress(c.trials_total) == (1, 3)

    end_all(cid)
    status, added = finalize(cid)
    assert status is None
    assert len(asked) == 1
    after = rows(cid)
    assert after[6:] == [(s, v, "queued") for s in (2, 3) for v in ("a", "b", "c")]
    with session_scope() as s:
        new = s.scalars(select(Trial.id).where(Trial.comparison_id == cid, Trial.seed >= 2))
        assert set(added) == set(new)
    with session_scope() as s:
        order = [(int(t.seed), t.variant) for t in (s.get_one(Trial, i) for i in added)]
    assert order == [(s, v) for s in (2, 3) for v in ("a", "b", "c")]
    c = comparison(cid)
    assert c.status == "queued"  # never succeeded between rounds
    assert (c.trials_total, c.epochs_total) == (12, 24)
    assert c.spec.round_progress(c.trials_total) == (2, 3)

    end_all(cid)
    status, added = finalize(cid)
    assert status is None
    assert len(added) == 3  # step 2 would pass max 5: only seed 4
    assert [r[:2] for r in rows(cid)[12:]] == [(4, "a"), (4, "b"), (4, "c")]
    assert comparison(cid).spec.round_progress(comparison(cid).trials_total) == (3, 3)

    end_all(cid)
    status, added = finalize(cid)
    assert (status, added) == ("succeeded", [])
    assert len(asked) == 2  # at max nothing is left to ask
    assert comparison(cid).trials_total == 15


def test_a_decided_round_ends_the_comparison_at_min(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    asked = decide(lambda report: False)
    cid = submit(db, {"min": 3, "max": 20})
    end_all(cid)
    assert finalize(cid) == ("succeeded", [])
    assert len(asked) == 1
    assert len(rows(cid)) == 6


def test_a_round_is_not_decided_while_a_trial_is_active(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    asked = decide(lambda report: True)
    cid = submit(db, {"min": 2, "max": 4})
    with session_scope() as s:
        one = s.scalars(select(Trial.id).where(Trial.comparison_id == cid)).first()
        s.execute(update(Trial).where(Trial.id == one).values(status="running"))
    end_all(cid)
    assert finalize(cid) == (None, [])
    assert asked == []
    assert len(rows(cid)) == 4


def test_a_failed_trial_or_a_cancel_ends_the_schedule(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    asked = decide(lambda report: True)
    failed = submit(db, {"min": 2, "max": 4})
    with session_scope() as s:
        one = s.scalars(select(Trial.id).where(Trial.comparison_id == failed)).first()
        s.execute(update(Trial).where(Trial.id == one).values(status="failed", error={}))
    end_all(failed)
    assert finalize(failed) == ("failed", [])
    cancelled = submit(db, {"min": 2, "max": 4})
    with session_scope() as s:
        cancel_comparison(s, s.get_one(Comparison, cancelled))
    assert comparison(cancelled).status == "cancelled"
    assert asked == []
    assert len(rows(failed)) == len(rows(cancelled)) == 4


def test_list_seeds_never_ask(db: Settings, decide: Callable[[Decision], list[Any]]) -> None:
    asked = decide(lambda report: True)
    cid = submit(db, [0, 1, 2])
    end_all(cid)
    assert finalize(cid) == ("succeeded", [])
    assert asked == []


def test_two_finalizers_at_once_add_the_round_once(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    """Two workers that end the last two trials of a round at once: one round, not two."""
    gate = threading.Barrier(2)

    def slow(report: Any) -> bool:
        time.sleep(0.3)  # both are inside the decision together, unless one waits for a lock
        return True

    decide(slow)
    cid = submit(db, {"min": 2, "max": 10, "step": 3})
    end_all(cid)
    outcomes: list[Any] = []

    def worker() -> None:
        gate.wait()
        try:
            outcomes.append(finalize(cid))
        except OperationalError as exc:  # SQLite: "database is locked" for the loser
            outcomes.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    added = [o for o in outcomes if isinstance(o, tuple) and o[1]]
    assert len(added) == 1, outcomes
    assert all(isinstance(o, tuple) or db.database_url.startswith("sqlite") for o in outcomes)
    seeds = [r[0] for r in rows(cid)]
    assert sorted(seeds) == sorted([*range(5)] * 2)
    assert comparison(cid).trials_total == 10
    assert comparison(cid).status == "queued"


def test_the_sweeper_adds_a_round_whose_decision_was_lost(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    """The worker that ended the round's last trial died before finalizing it."""
    decide(lambda report: True)
    cid = submit(db, {"min": 2, "max": 3})
    end_all(cid)
    done = sweep(db)
    assert cid in done.rounds_added
    assert cid not in done.finalized
    with session_scope() as s:
        new = list(
            s.scalars(
                select(Trial)
                .where(Trial.comparison_id == cid, Trial.seed == 2)
                .order_by(Trial.variant_index)
            )
        )
        # The tenant's share of the broker is sent now, the rest as its trials are claimed.
        share = db.dispatch_per_tenant or len(new)
        assert {t.id for t in new[:share]} <= set(done.enqueued)
        assert all(t.enqueued_at is not None for t in new[:share])
        assert all(t.enqueued_at is None for t in new[share:])
    end_all(cid)
    assert cid in sweep(db).finalized
    assert comparison(cid).status == "succeeded"


def test_rounds_already_trained_are_reused_without_training(
    db: Settings, decide: Callable[[Decision], list[Any]]
) -> None:
    decide(lambda report: True)
    first = submit(db, {"min": 2, "max": 4}, reuse=True)
    for _ in range(3):
        end_all(first)
        finalize(first)
    assert comparison(first).status == "succeeded"
    assert len(rows(first)) == 8
    # The same comparison again: every round is found trained, so it ends at once.
    second = submit(db, {"min": 2, "max": 4}, reuse=True)
    c = comparison(second)
    assert c.status == "succeeded"
    assert c.trials_total == 8
    with session_scope() as s:
        reused = s.scalar(
            select(func.count()).where(
                Trial.comparison_id == second, Trial.reused_from.is_not(None)
            )
        )
    assert reused == 8
