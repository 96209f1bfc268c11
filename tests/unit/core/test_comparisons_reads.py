"""core.trials.comparisons' reads: the comparison list (filters, keyset pages, tenancy) and the
trials in (variant, seed) order, on a real SQLite database built from the tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from core.store.tables import Comparison, EpochMetric, Trial
from core.trials.comparisons import (
    comparisons_page,
    epochs_since,
    trial_key,
    trial_states,
    trials_in_order,
)
from tests.support.helpers import stored_spec


def _comparisons(s: Session) -> list[str]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    names = ["a_b", "axb", "100%", "plain", "other tenant's a_b"]
    for i, name in enumerate(names):
        s.add(
            Comparison(
                id=f"c{i}",
                tenant="b" if "tenant" in name else "a",
                name=name,
                status="running" if i % 2 else "queued",
                spec=stored_spec(),
                created_at=t0 + timedelta(minutes=i // 2),  # ties broken by id
            )
        )
    s.commit()
    return names


def test_pages_walk_every_comparison_newest_first_once(session: Session) -> None:
    _comparisons(session)
    seen: list[str] = []
    after = None
    while True:
        rows, more = comparisons_page(session, "a", limit=1, after=after)
        seen += [r.id for r in rows]
        if not more:
            break
        after = (rows[-1].created_at, rows[-1].id)
    assert seen == ["c3", "c2", "c1", "c0"]  # c4 is tenant b's


def test_the_name_filter_takes_wildcards_literally_and_status_exactly(session: Session) -> None:
    _comparisons(session)
    assert [r.name for r in comparisons_page(session, "a", name="_", limit=10)[0]] == ["a_b"]
    assert [r.name for r in comparisons_page(session, "a", name="%", limit=10)[0]] == ["100%"]
    assert [r.name for r in comparisons_page(session, "a", name="A_B", limit=10)[0]] == ["a_b"]
    running = comparisons_page(session, "a", status="running", limit=10)[0]
    assert sorted(r.id for r in running) == ["c1", "c3"]


def test_trials_come_variant_then_seed_then_replicate_and_page_after_a_key(
    session: Session,
) -> None:
    session.add(Comparison(id="c", tenant="a", name="n", spec=stored_spec()))
    for v, seed, r in [(1, 5, 0), (0, 7, 1), (0, 7, 0), (1, 2, 0), (0, 3, 0)]:
        session.add(
            Trial(
                id=f"t{v}{seed}{r}",
                comparison_id="c",
                variant=f"v{v}",
                variant_index=v,
                seed=seed,
                replicate=r,
            )
        )
    session.commit()
    order = [(t.variant_index, t.seed, t.replicate) for t in trials_in_order(session, "c")]
    assert order == [(0, 3, 0), (0, 7, 0), (0, 7, 1), (1, 2, 0), (1, 5, 0)]
    first = list(trials_in_order(session, "c", limit=2))
    key = trial_key(session, first[-1].id)
    assert key == (0, 7, 0)
    rest = [
        (t.variant_index, t.seed, t.replicate) for t in trials_in_order(session, "c", after=key)
    ]
    assert rest == [(0, 7, 1), (1, 2, 0), (1, 5, 0)]


def test_the_stream_reads_each_epoch_once_after_the_last_seen(session: Session) -> None:
    session.add(Comparison(id="c", tenant="a", name="n", spec=stored_spec()))
    session.add(Trial(id="t1", comparison_id="c", variant="b", variant_index=1, seed=0))
    session.add(
        Trial(id="t0", comparison_id="c", variant="a", variant_index=0, seed=4, epochs_done=2)
    )
    for epoch in (1, 2):
        session.add(
            EpochMetric(trial_id="t0", epoch=epoch, values={"loss": 1.0 / epoch}, seconds=0.5)
        )
    session.commit()
    trials = trial_states(session, "c")
    assert [(t["id"], t["variant"], t["epochs_done"]) for t in trials] == [
        ("t0", "a", 2),
        ("t1", "b", 0),
    ]
    assert epochs_since(session, trials, {"t0": 1}) == [
        {"trial_id": "t0", "variant": "a", "seed": 4, "epoch": 2, "loss": 0.5, "seconds": 0.5}
    ]
    assert [e["epoch"] for e in epochs_since(session, trials, {})] == [1, 2]
    assert epochs_since(session, trials, {"t0": 2}) == []
