"""Corruption errors and mCE against a hand computation; the interaction test's error rate
when the ranking truly holds, and its power when it flips."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.oneway import anova_oneway

from core.report.robustness import corruption_errors, interaction_tests, mce

BASE = {("noise", 1): 0.10, ("noise", 3): 0.30, ("blur", 1): 0.20, ("blur", 3): 0.40}
MODEL = {("noise", 1): 0.05, ("noise", 3): 0.20, ("blur", 1): 0.25, ("blur", 3): 0.45}


def test_ce_and_mce_by_hand() -> None:
    ce = corruption_errors(MODEL, BASE)
    # noise: (0.05 + 0.20) / (0.10 + 0.30) = 0.625; blur: (0.25 + 0.45) / (0.20 + 0.40) = 7/6
    assert ce == {"blur": pytest.approx(0.7 / 0.6), "noise": pytest.approx(0.625)}
    assert mce(ce) == pytest.approx((0.625 + 0.7 / 0.6) / 2)
    assert mce(corruption_errors(BASE, BASE)) == pytest.approx(1.0)


def test_relative_ce_subtracts_each_models_clean_error() -> None:
    rel = corruption_errors(MODEL, BASE, clean=(0.02, 0.05))
    # noise: (0.03 + 0.18) / (0.05 + 0.25) = 0.7; blur: (0.23 + 0.43) / (0.15 + 0.35) = 1.32
    assert rel["noise"] == pytest.approx(0.7)
    assert rel["blur"] == pytest.approx(1.32)
    flat = corruption_errors(MODEL, {k: 0.05 for k in BASE}, clean=(0.02, 0.05))
    assert flat == {"blur": None, "noise": None}  # the baseline lost nothing: undefined
    assert mce(flat) is None


def test_the_interaction_test_is_welchs_anova_holm_adjusted() -> None:
    rng = np.random.default_rng(0)
    diffs = {
        ("a", "b"): {"mnist": list(rng.normal(1, 1, 5)), "digits": list(rng.normal(1, 2, 6))},
        ("a", "c"): {"mnist": list(rng.normal(1, 1, 5)), "digits": list(rng.normal(-1, 1, 5))},
    }
    out = interaction_tests(diffs)
    raw = [anova_oneway(list(d.values()), use_var="unequal").pvalue for d in diffs.values()]
    adjusted = multipletests(raw, method="holm")[1]
    for row, p, q in zip(out, raw, adjusted, strict=True):
        assert row.p_value == pytest.approx(p)
        assert row.p_adjusted == pytest.approx(q)
    assert out[0].datasets == ("mnist", "digits")


def test_too_few_seeds_or_datasets_is_not_tested() -> None:
    out = interaction_tests({("a", "b"): {"mnist": [0.1, 0.2], "digits": [0.3]}})
    assert out[0].p_value is None
    assert interaction_tests({("a", "b"): {"mnist": [0.1, 0.2, 0.3]}})[0].p_value is None


def test_constant_differences_are_decided_exactly() -> None:
    same = interaction_tests({("a", "b"): {"x": [0.01, 0.01, 0.01], "y": [0.01, 0.01]}})
    assert same[0].p_value == 1.0
    apart = interaction_tests({("a", "b"): {"x": [0.01, 0.01, 0.01], "y": [0.03, 0.03]}})
    assert apart[0].p_value == 0.0


def _simulate(flip: float, runs: int, seeds: int, rng: np.random.Generator) -> float:
    """Share of runs whose interaction is claimed at 5%: three datasets, the difference 1 SD
    of the seed noise on two and ``flip`` on the third, and a per-seed effect shared by both
    variants (it cancels in the paired difference, as the design intends)."""
    claimed = 0
    for _ in range(runs):
        by_dataset = {}
        for d, gap in (("mnist", 1.0), ("fashion", 1.0), ("digits", flip)):
            shared = rng.normal(0, 3, seeds)  # a seed's split and order, shared by a and b
            a = 90 + shared + gap + rng.normal(0, 1 / np.sqrt(2), seeds)
            b = 90 + shared + rng.normal(0, 1 / np.sqrt(2), seeds)
            by_dataset[d] = list(a - b)
        (row,) = interaction_tests({("a", "b"): by_dataset})
        claimed += row.p_value is not None and row.p_value < 0.05
    return claimed / runs


def test_when_the_ranking_holds_the_interaction_is_claimed_at_most_five_percent() -> None:
    rate = _simulate(1.0, 2000, 5, np.random.default_rng(1))
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 2000)  # 5% within its Monte-Carlo error


def test_when_the_ranking_flips_the_interaction_is_found() -> None:
    assert _simulate(-1.0, 300, 8, np.random.default_rng(2)) > 0.8
