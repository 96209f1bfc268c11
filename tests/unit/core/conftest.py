"""Fixtures for core's tests: a trial factory (``tests.support.trials.make_trial``) for the
report, and a session on a real SQLite database built from the tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from core.report.build import TrialResult
from core.store.tables import Base
from tests.support.trials import make_trial


@pytest.fixture(scope="session")
def trial() -> Callable[..., TrialResult]:
    """The trial factory (session-scoped: it holds no state, and hypothesis tests use it)."""
    return make_trial


@pytest.fixture
def session() -> Iterator[Session]:
    """A session on a new in-memory SQLite database with every table."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()
