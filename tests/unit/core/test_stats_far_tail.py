"""Effect sizes far in the tail: the report's paired Hedges' g interval must stay finite.

Found by the article's end-to-end report: three seeds whose per-seed differences barely vary
give |t| in the hundreds, where scipy's noncentral t CDF is NaN and the exact interval cannot be
bracketed; the report answered 500.
"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from core import stats as st


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.9, 0.9001, 0.9002], [0.1, 0.1, 0.1]),
        ([0.95, 0.96, 0.955], [0.1, 0.1, 0.1001]),
        ([0.981, 0.9812, 0.9809, 0.9811], [0.11, 0.1101, 0.11, 0.1102]),
    ],
)
def test_paired_g_interval_is_finite_and_contains_the_estimate(
    a: list[float], b: list[float]
) -> None:
    got = st.hedges_g_paired(a, b)
    assert got is not None
    g, (lo, hi) = got
    assert math.isfinite(lo)
    assert math.isfinite(hi)
    assert lo < hi
    # d_z itself (before the small-sample shrinkage) lies inside its interval.
    d = [x - y for x, y in zip(a, b, strict=True)]
    dz = stats.tmean(d) / stats.tstd(d)
    assert lo <= dz <= hi
    assert g > 0
