"""Stored trial errors carry no terminal codes: Keras colours its messages
(``\\x1b[1m``), and an error is read in JSON, CSV, the dashboard and terminals. Stripped where
errors are stored (core.trials.lifecycle), on Postgres, through the worker's own failure path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import tiny_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = pytest.mark.services

KERAS_MESSAGE = (
    'Input 0 of layer \x1b[1m"dense"\x1b[0m is incompatible with the layer: expected axis -1 '
    "\x1b[32mof input shape\x1b[0m to have value 784\x1b]8;;https://keras.io\x07 (docs)\x1b]8;;\x07"
    "\nline two\x07"
)
CLEAN = (
    'Input 0 of layer "dense" is incompatible with the layer: expected axis -1 of input shape '
    "to have value 784 (docs)\nline two"
)


def test_stored_trial_and_comparison_errors_have_no_terminal_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings
    from core.spec import ComparisonSpec
    from core.status import TrialStatus
    from core.store.db import session_scope
    from core.store.tables import Comparison, Trial
    from core.trials.comparisons import create_comparison
    from core.trials.finalize import finalize_comparison
    from core.trials.lifecycle import end_unclaimed, finish_trial
    from core.trials.validation import validate_comparison
    from worker.tasks import _problem

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with fresh_database("archbench_errors") as url, in_process_database(url, monkeypatch):
        validated = validate_comparison(
            ComparisonSpec.model_validate(tiny_spec("ansi", seeds=[0], epochs=1)), get_settings()
        )
        with session_scope() as s:
            row, trial_ids, _ = create_comparison(
                s,
                tenant="t",
                validated=validated,
                idempotency_key=None,
                request_hash="h",
                max_active=10,
            )
            cid = row.id
        first, second = trial_ids
        with session_scope() as s:
            assert finish_trial(
                s, first, owner=None, status="failed", error=_problem(ValueError(KERAS_MESSAGE))
            )
            assert end_unclaimed(
                s, second, status=TrialStatus.FAILED, error={"detail": "\x1b[31mred\x1b[0m", "n": 1}
            )
        with session_scope() as s:
            finalize_comparison(s, cid)
        with session_scope() as s:
            errors = {t.id: t.error for t in s.query(Trial).filter(Trial.comparison_id == cid)}
            comparison = s.get(Comparison, cid)
            assert comparison is not None
            comparison_error = comparison.error
    first_error = errors[first]
    assert first_error is not None
    assert first_error["detail"] == f"ValueError: {CLEAN}"
    assert errors[second] == {"detail": "red", "n": 1}
    assert comparison_error is not None
    assert "\x1b" not in str(comparison_error)
    assert CLEAN in comparison_error["detail"]
