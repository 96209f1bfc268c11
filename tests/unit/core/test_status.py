"""core.status: the state words are the contract's strings, stored as themselves, and the
tables refuse any other word."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, Table, select, text
from sqlalchemy.exc import IntegrityError

from core.status import ACTIVE, TERMINAL, ComparisonStatus, Outcome, StopReason, TrialStatus
from core.store.db import make_engine
from core.store.tables import Base, Comparison, Trial
from tests.support.helpers import stored_spec

WORDS = ["queued", "running", "succeeded", "failed", "cancelled"]


def test_words_are_the_contracts() -> None:
    assert [s.value for s in TrialStatus] == WORDS
    assert [s.value for s in ComparisonStatus] == WORDS
    assert set(TERMINAL) | set(ACTIVE) == set(WORDS)
    assert not set(TERMINAL) & set(ACTIVE)
    assert "diverged" in {r.value for r in StopReason}
    assert {"duplicate", "lease_lost", "retry"} <= {o.value for o in Outcome}


def test_members_equal_their_strings() -> None:
    # Held as plain str, as the code that compares them holds them: a member's own literal
    # type would make mypy call the comparisons below impossible.
    queued: str = TrialStatus.QUEUED
    failed: str = ComparisonStatus.FAILED
    by_status: dict[str, int] = {TrialStatus.RUNNING: 1}
    assert queued == "queued"
    assert failed == TrialStatus.FAILED
    assert "cancelled" in TERMINAL
    assert f"{StopReason.DIVERGED}" == "diverged"
    assert by_status["running"] == 1


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def _table(model: type[Base]) -> Table:
    """The model's Table (a declarative model types ``__table__`` as any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def test_stored_as_the_word_and_checked(engine: Engine) -> None:
    comparisons, trials = _table(Comparison), _table(Trial)
    with engine.begin() as conn:
        conn.execute(
            comparisons.insert().values(
                id="c", name="n", status=ComparisonStatus.RUNNING, spec=stored_spec(), analyses={}
            )
        )
        conn.execute(
            trials.insert().values(
                id="t",
                comparison_id="c",
                variant="v",
                variant_index=0,
                seed=0,
                epochs_planned=1,
                status=TrialStatus.SUCCEEDED,
                stop_reason=StopReason.DIVERGED,
            )
        )
        raw = conn.execute(text("SELECT status, stop_reason FROM trials")).one()
        assert tuple(raw) == ("succeeded", "diverged")
        assert conn.scalar(select(Comparison.status)) == "running"
    for table in ("comparisons", "trials"):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET status = 'paused'"))
