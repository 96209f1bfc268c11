"""Fixtures for the report tests: a trial factory (``tests.support.trials.make_trial``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.report import TrialResult
from tests.support.trials import make_trial


@pytest.fixture(scope="session")
def trial() -> Callable[..., TrialResult]:
    """The trial factory (session-scoped: it holds no state, and hypothesis tests use it)."""
    return make_trial
