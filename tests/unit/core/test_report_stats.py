"""The statistics under the report, checked against scipy, hand formulas and a textbook."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.report.stats import hedges_g_welch, holm, welch_t

# Wikipedia, "Welch's t-test", examples 1 and 2: Welch t, df and two-sided p as printed.
WIKI_1 = (
    [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4],
    [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4],
)
WIKI_2 = (
    [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8],
    [21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8,
     20.7, 21.7, 21.5, 22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8],
)  # fmt: skip


def _by_hand(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Welch by the textbook formulas: diff, df, CI low, CI high."""
    va = np.var(a, ddof=1) / len(a)
    vb = np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = float(np.mean(a) - np.mean(b))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return diff, float(df), diff - half, diff + half


@pytest.mark.parametrize(
    ("sample", "df", "p"), [(WIKI_1, 25.0, 0.021), (WIKI_2, 9.9, 0.149)], ids=["wiki1", "wiki2"]
)
def test_welch_matches_textbook_values(
    sample: tuple[list[float], list[float]], df: float, p: float
) -> None:
    result = welch_t(*sample)
    assert result.df == pytest.approx(df, abs=0.05)
    assert result.p == pytest.approx(p, abs=0.0005)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        WIKI_1,
        WIKI_2,
        ([0.97, 0.975, 0.98], [0.94, 0.945, 0.95]),
        ([0.91, 0.93, 0.92, 0.95, 0.90], [0.92, 0.925]),
        ([0.5, 0.5, 0.5], [0.4, 0.45, 0.43]),  # one side constant: still testable
    ],
)
@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy, on the constant side
def test_welch_matches_scipy_and_hand_formula(a: list[float], b: list[float]) -> None:
    result = welch_t(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    diff, df, lo, hi = _by_hand(a, b)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.diff == pytest.approx(diff, abs=1e-12)
    assert result.df == pytest.approx(df, rel=1e-9)
    assert result.ci95 == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
    assert result.ci_adjusted == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)
    scipy_ci = reference.confidence_interval(0.95)
    assert result.ci95 == pytest.approx((scipy_ci.low, scipy_ci.high), rel=1e-9, abs=1e-12)


def test_welch_hand_computed_small_case() -> None:
    # Both variances 2.5e-5 with n = 3: se = sqrt(2 * 2.5e-5 / 3), df = 4 exactly.
    result = welch_t([0.97, 0.975, 0.98], [0.94, 0.945, 0.95])
    se = math.sqrt(2 * 2.5e-5 / 3)
    assert result.diff == pytest.approx(0.03)
    assert result.df == pytest.approx(4.0)
    assert result.ci95 == pytest.approx((0.03 - 2.7764451 * se, 0.03 + 2.7764451 * se), rel=1e-6)
    assert result.p == pytest.approx(2 * stats.t.sf(0.03 / se, 4), rel=1e-6)


def test_welch_with_no_spread_on_either_side_gives_no_test() -> None:
    same = welch_t([0.9, 0.9, 0.9], [0.9, 0.9])
    assert (same.diff, same.ci95, same.p, same.df) == (0.0, None, None, None)
    apart = welch_t([0.9, 0.9], [0.8, 0.8, 0.8])
    assert apart.diff == pytest.approx(0.1)
    assert apart.p is None
    assert apart.ci95 is None


def test_welch_needs_two_values_a_side() -> None:
    with pytest.raises(ValueError, match="two values"):
        welch_t([0.9], [0.8, 0.85])


def test_holm_hand_example() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_handles_empty() -> None:
    assert holm([0.6, 0.2]) == pytest.approx([0.6, 0.4])
    assert holm([0.9, 0.8, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([]) == []


@pytest.mark.slow  # 60 examples through statsmodels
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=12))
def test_holm_is_monotone_bounded_and_never_below_raw(p_values: list[float]) -> None:
    adjusted = holm(p_values)
    assert all(p <= q <= 1.0 for p, q in zip(p_values, adjusted, strict=True))
    ordered = [adjusted[i] for i in np.argsort(p_values, kind="stable")]
    assert ordered == sorted(ordered)


def test_hedges_g_welch_hand_examples() -> None:
    # means 2 and 5, both variances 1: Bonett's standardiser sqrt((1 + 1) / 2) = 1, d = -3,
    # g = (1 - 3 / (4 * 6 - 9)) * d = 0.8 * -3.
    g, (lo, hi) = hedges_g_welch([1, 2, 3], [4, 5, 6]) or (None, (None, None))
    assert g == pytest.approx(-2.4)
    # Bonett's variance: d² (va²/(na-1) + vb²/(nb-1)) / (8 s⁴) + (va/(na-1) + vb/(nb-1)) / s².
    var = 9 * (1 / 2 + 1 / 2) / 8 + (1 / 2 + 1 / 2)
    half = stats.norm.ppf(0.975) * math.sqrt(var)
    assert (lo, hi) == pytest.approx((-3 - half, -3 + half))
    # means 5 and 3, variances 20/3 and 4: s = sqrt((20/3 + 4) / 2).
    result = hedges_g_welch([2, 4, 6, 8], [1, 3, 5])
    assert result is not None
    s = math.sqrt((20 / 3 + 4) / 2)
    assert result[0] == pytest.approx((1 - 3 / (4 * 7 - 9)) * 2 / s)


def test_hedges_g_welch_undefined_without_spread_or_seeds() -> None:
    assert hedges_g_welch([0.9, 0.9], [0.8, 0.8]) is None
    assert hedges_g_welch([0.9], [0.8, 0.7]) is None
