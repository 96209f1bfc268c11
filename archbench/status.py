"""The state words the service answers with, as the client spells them.

The client package imports none of the server's (pyproject's import-linter contract), so it
cannot use core/status.py; these are copies of the words the client reads, and
tests/unit/archbench/test_status_words.py holds them equal to the server's. ``StrEnum``s: a
member equals its string, so ``comparison["status"] in TERMINAL`` works on the JSON as it
comes.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TERMINAL", "ComparisonStatus"]


class ComparisonStatus(StrEnum):
    """A comparison's state: queued -> running -> succeeded | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {ComparisonStatus.SUCCEEDED, ComparisonStatus.FAILED, ComparisonStatus.CANCELLED}
)
"""The states a comparison never leaves: ``Client.wait`` returns on them."""
