"""A failed comparison's problem says what failed and whether any result is left."""

from __future__ import annotations

import pytest

from core.trials.lifecycle import failure_summary


@pytest.mark.parametrize(
    ("failed", "succeeded", "ended", "title", "detail"),
    [
        (3, 0, 3, "All trials failed", "All 3 trials failed; there are no results to report."),
        (1, 0, 1, "All trials failed", "The only trial failed; there are no results to report."),
        (
            2,
            0,
            3,
            "No trial succeeded",
            "2 of 3 trials failed and the rest were cancelled; there are no results to report.",
        ),
        (
            1,
            3,
            4,
            "Some trials failed",
            "1 of 4 trials failed; the results of the 3 trials that succeeded are kept.",
        ),
        (
            2,
            1,
            3,
            "Some trials failed",
            "2 of 3 trials failed; the results of the 1 trial that succeeded are kept.",
        ),
    ],
)
def test_the_wording_matches_the_counts(
    failed: int, succeeded: int, ended: int, title: str, detail: str
) -> None:
    assert failure_summary(failed, succeeded=succeeded, ended=ended) == (title, detail)
    assert "others" not in detail
