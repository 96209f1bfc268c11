"""The words a trial's, a comparison's and a worker's state are spelled with: one place.

They are ``StrEnum``s, so a member equals its string (``TrialStatus.QUEUED == "queued"``), is
stored as that string, and serialises to it in JSON: the database and the HTTP contract are
unchanged. Only core/trials/lifecycle.py changes a status; the columns carry CHECK constraints with
these words (migration ``0004_status_checks``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "ComparisonStatus",
    "Outcome",
    "StopReason",
    "TrialStage",
    "TrialStatus",
]


class TrialStatus(StrEnum):
    """A trial's state: queued -> running -> succeeded | failed | cancelled (and running ->
    queued when a worker hands it back)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialStage(StrEnum):
    """Which stage a trial belongs to: ``tuning`` trials search the training knobs and are
    scored on the validation split only; ``test`` trials train at the chosen settings over
    the comparison's seeds and are the only ones tested (the word the HTTP contract uses)."""

    TUNING = "tuning"
    TEST = "test"


class ComparisonStatus(StrEnum):
    """A comparison's state, the same words as a trial's."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: tuple[TrialStatus, ...] = (
    TrialStatus.SUCCEEDED,
    TrialStatus.FAILED,
    TrialStatus.CANCELLED,
)
"""The states nothing leaves, a trial's or a comparison's (the two are spelled alike, so
``comparison.status in TERMINAL`` holds too). A tuple: SQL ``IN`` lists keep one order."""

ACTIVE: tuple[TrialStatus, ...] = (TrialStatus.QUEUED, TrialStatus.RUNNING)
"""The states of a trial or comparison still to end."""


class StopReason(StrEnum):
    """Why training ended before its last epoch (``Trial.stop_reason``; None: it ran them all)."""

    EARLY_STOPPING = "early_stopping"
    TIME_BUDGET = "time_budget"
    CANCELLED = "cancelled"
    DIVERGED = "diverged"  # the training loss became NaN or infinite
    PRUNED = "pruned"  # a tuning trial the tuning's pruner stopped (core.tuning.search)


class Outcome(StrEnum):
    """What one delivery of a trial message did (the Celery task's return value)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSING = "missing"  # the trial does not exist (any more)
    DUPLICATE = "duplicate"  # someone else holds or ended it
    LEASE_LOST = "lease_lost"  # the lease expired and another worker took the trial
    RETRY = "retry"  # the database went away; the trial went back to the queue
