"""Every new figure of the report recomputed independently with scipy and statsmodels.

Paired t and Welch p-values and intervals, Holm, the Bonferroni-adjusted intervals, TOST,
Hedges' g and its interval, the minimum detectable difference, the seeds needed, the
sequential levels, tiers and ranks; plus ``tested_pairs``, ``needs_more_seeds`` and the
typed model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from core.report.build import TrialResult, build_report, needs_more_seeds
from core.report.build import tested_pairs as family  # not test_*: pytest would collect it
from core.report.schema import PairDifference, Report
from core.report.sequential import boundary_levels, t_levels, z_bounds
from core.report.stats import holm
from core.spec import DesignSpec
from tests.support.trials import make_trial

A = [0.912, 0.935, 0.921, 0.940, 0.918]
B = [0.905, 0.921, 0.917, 0.925, 0.903]
C = [0.890, 0.931, 0.880, 0.905, 0.899]
MARGIN = 0.02


def _trials(
    values: Mapping[str, Sequence[float]], seeds: Mapping[str, Sequence[int]] | None = None
) -> list[TrialResult]:
    seeds = seeds or {}
    return [
        make_trial(name, s, x)
        for name, xs in values.items()
        for s, x in zip(seeds.get(name, range(len(xs))), xs, strict=True)
    ]


def _build(
    trials: list[TrialResult], spec: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    names = list(dict.fromkeys(t.variant for t in trials))
    return build_report(
        comparison_id="c",
        primary_metric=kw.pop("metric", "test_accuracy"),
        variant_order=names,
        trials=trials,
        final=kw.pop("final", True),
        design=None if spec is None else DesignSpec.model_validate(spec),
        **kw,
    )


def _pair(report: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    return next(p for p in report["pairwise"] if (p["a"], p["b"]) == (a, b))


def _hedges_j(df: float) -> float:
    return float(special.gamma(df / 2) / (math.sqrt(df / 2) * special.gamma((df - 1) / 2)))


def _nct_ci(t_obs: float, df: float, n: int) -> tuple[float, float]:
    def solve(q: float) -> float:
        return float(
            optimize.brentq(
                lambda d: stats.nct.cdf(t_obs, df, d * math.sqrt(n)) - q, -50, 50, xtol=1e-12
            )
        )

    return solve(0.975), solve(0.025)


def _first_power_n(analysis: Any, es: float, alpha: float, alternative: str) -> int:
    for n in range(2, 100_000):
        if analysis.power(es, n, alpha, alternative=alternative) >= 0.8:
            return n
    raise AssertionError("no n")


def test_paired_figures_match_scipy_and_statsmodels() -> None:
    report = _build(_trials({"a": A, "b": B, "c": C}), {"equivalence_margin": MARGIN})
    design = report["design"]
    assert (design["paired"], design["test"], design["family_size"]) == (True, "paired_t", 3)
    m = 3
    pairs = [("a", "b"), ("a", "c"), ("b", "c")]
    data = {"a": A, "b": B, "c": C}
    raw = [stats.ttest_rel(data[x], data[y]).pvalue for x, y in pairs]
    reference_holm = multipletests(raw, method="holm")[1]
    for (x, y), p_raw, p_holm in zip(pairs, raw, reference_holm, strict=True):
        p = _pair(report, x, y)
        a, b = np.array(data[x]), np.array(data[y])
        d = a - b
        res = stats.ttest_rel(a, b)
        assert p["test"] == "paired_t"
        assert p["p_value"] == pytest.approx(p_raw, rel=1e-10)
        assert p["p_adjusted"] == pytest.approx(p_holm, rel=1e-10)
        assert p["df"] == pytest.approx(len(d) - 1)
        ci = res.confidence_interval(0.95)
        assert p["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
        adj = res.confidence_interval(1 - 0.05 / m)  # Bonferroni over the family
        assert p["ci95_adjusted"] == pytest.approx([adj.low, adj.high], rel=1e-9)
        assert p["correlation"] == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-9)
        # TOST: the larger of the two one-sided tests against -margin and +margin.
        low = stats.ttest_1samp(d, -MARGIN, alternative="greater").pvalue
        high = stats.ttest_1samp(d, MARGIN, alternative="less").pvalue
        assert p["equivalence_p"] == pytest.approx(max(low, high), rel=1e-9)
        # Hedges' g_z with its exact small-sample correction and noncentral-t interval.
        n = len(d)
        dz = d.mean() / d.std(ddof=1)
        assert p["effect_size"] == pytest.approx(_hedges_j(n - 1) * dz, rel=1e-9)
        assert p["effect_size_ci95"] == pytest.approx(
            _nct_ci(dz * math.sqrt(n), n - 1, n), abs=1e-6
        )
        # MDE: statsmodels' effect size at 80% power times the SD of the differences.
        es = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05 / m, power=0.8)
        assert p["mde"] == pytest.approx(es * d.std(ddof=1), rel=1e-6)
    eq_holm = multipletests(
        [_pair(report, x, y)["equivalence_p"] for x, y in pairs], method="holm"
    )[1]
    for (x, y), q in zip(pairs, eq_holm, strict=True):
        assert _pair(report, x, y)["equivalence_p_adjusted"] == pytest.approx(q, rel=1e-10)


def test_conclusions_and_seeds_needed_follow_the_adjusted_tests() -> None:
    report = _build(_trials({"a": A, "b": B, "c": C}), {"equivalence_margin": MARGIN})
    for p in report["pairwise"]:
        if p["p_adjusted"] < 0.05:
            want = "a_better" if p["diff"] > 0 else "b_better"
        elif p["equivalence_p_adjusted"] < 0.05:
            want = "equivalent"
        else:
            want = "inconclusive"
        assert p["conclusion"] == want
        assert p["significant"] == (want in ("a_better", "b_better"))
        if want != "inconclusive":
            assert p["seeds_needed"] is None
            continue
        a = np.array({"a": A, "b": B, "c": C}[p["a"]])
        b = np.array({"a": A, "b": B, "c": C}[p["b"]])
        d = a - b
        sd = d.std(ddof=1)
        level = 0.05 / 3  # one look: the per-pair Bonferroni level
        candidates = [_first_power_n(TTestPower(), abs(d.mean()) / sd, level, "two-sided")]
        if abs(d.mean()) < MARGIN:
            es = (MARGIN - abs(d.mean())) / sd
            candidates.append(_first_power_n(TTestPower(), es, level, "larger"))
        assert p["seeds_needed"] == min(candidates)
    assert {p["conclusion"] for p in report["pairwise"]} >= {"inconclusive"}


def test_partly_matched_seeds_are_paired_over_the_seeds_both_have() -> None:
    """b's seed 4 failed (it is missing): the paired t runs over seeds 0-3, which both have,
    as scipy's ttest_rel on those pairs; with only two shared seeds it is Welch over all."""
    trials = _trials({"a": A, "b": B[:4]})
    report = _build(trials, {"equivalence_margin": MARGIN})
    p = report["pairwise"][0]
    a, b = np.array(A[:4]), np.array(B[:4])
    res = stats.ttest_rel(a, b)
    assert (p["test"], p["paired"], p["n_paired"]) == ("paired_t", True, 4)
    assert (p["n_a"], p["n_b"]) == (5, 4)
    assert p["p_value"] == pytest.approx(res.pvalue, rel=1e-9)
    assert p["diff"] == pytest.approx(float(np.mean(a - b)), rel=1e-9)
    ci = res.confidence_interval(0.95)
    assert p["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert p["correlation"] == pytest.approx(float(np.corrcoef(a, b)[0, 1]), rel=1e-9)
    two_shared = _trials({"a": A, "b": B[:4]}, {"b": [0, 1, 12, 13]})
    q = _build(two_shared, {"equivalence_margin": MARGIN})["pairwise"][0]
    assert (q["test"], q["paired"], q["n_paired"]) == ("welch", False, None)
    welch = stats.ttest_ind(np.array(A), b, equal_var=False)
    assert q["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)


def test_welch_figures_when_the_seeds_differ() -> None:
    # b ran other seeds than a: unpaired, Welch.
    trials = _trials({"a": A, "b": B[:4]}, {"b": [10, 11, 12, 13]})
    report = _build(trials, {"equivalence_margin": MARGIN})
    p = report["pairwise"][0]
    a, b = np.array(A), np.array(B[:4])
    res = stats.ttest_ind(a, b, equal_var=False)
    assert (p["test"], p["paired"], p["correlation"]) == ("welch", False, None)
    assert report["design"]["test"] == "welch"
    assert p["p_value"] == pytest.approx(res.pvalue, rel=1e-9)
    ci = res.confidence_interval(0.95)
    assert p["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    adj = res.confidence_interval(0.95)  # one pair: the adjusted level is 95% too
    assert p["ci95_adjusted"] == pytest.approx([adj.low, adj.high], rel=1e-9)
    p1 = stats.ttest_ind(a + MARGIN, b, equal_var=False, alternative="greater").pvalue
    p2 = stats.ttest_ind(a - MARGIN, b, equal_var=False, alternative="less").pvalue
    assert p["equivalence_p"] == pytest.approx(max(p1, p2), rel=1e-9)
    # Bonett's unequal-variance standardised difference, bias-corrected, and its interval.
    va, vb = a.var(ddof=1), b.var(ddof=1)
    s2 = (va + vb) / 2
    d = (a.mean() - b.mean()) / math.sqrt(s2)
    na, nb = len(a), len(b)
    var = (
        d**2 * (va**2 / (na - 1) + vb**2 / (nb - 1)) / (8 * s2**2)
        + (va / (na - 1) + vb / (nb - 1)) / s2
    )
    g = (1 - 3 / (4 * (na + nb) - 9)) * d
    assert p["effect_size"] == pytest.approx(g, rel=1e-9)
    z = stats.norm.ppf(0.975)
    # Bonett's interval is centred on the unadjusted d (statpsych's ci.stdmean2).
    assert p["effect_size_ci95"] == pytest.approx([d - z * math.sqrt(var), d + z * math.sqrt(var)])
    es = TTestIndPower().solve_power(
        effect_size=None, nobs1=na, alpha=0.05, power=0.8, ratio=nb / na
    )
    assert p["mde"] == pytest.approx(es * math.sqrt(s2), rel=1e-6)


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = list(rng.uniform(0, 0.2, size=int(rng.integers(1, 8))))
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)


@pytest.mark.parametrize(("kind", "c_last"), [("pocock", 2.413), ("obrien_fleming", 2.040)])
def test_boundaries_match_the_published_constants_and_the_joint_normal(
    kind: str, c_last: float
) -> None:
    # Jennison and Turnbull (2000), tables 2.1 and 2.3: five equally spaced looks, two-sided
    # alpha 0.05: Pocock's constant 2.413, O'Brien-Fleming's last critical value 2.040.
    fractions = (0.2, 0.4, 0.6, 0.8, 1.0)
    bounds = np.array(z_bounds(fractions, 0.05, kind))
    assert bounds[-1] == pytest.approx(c_last, abs=5e-4)
    # The crossing probability recomputed by scipy's multivariate normal (Genz): the look
    # statistics have corr(Z_j, Z_k) = sqrt(t_j / t_k).
    t = np.array(fractions)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = stats.multivariate_normal(np.zeros(len(t)), cov)
    inside = mvn.cdf(bounds, lower_limit=-bounds, rng=np.random.default_rng(0))
    assert 1 - inside == pytest.approx(0.05, abs=2e-4)


def test_the_report_schedule_spends_alpha_by_monte_carlo() -> None:
    # {min 3, max 20, step 1}: 18 looks. 400,000 null paths of the partial-sum process
    # (independent normal increments), the share that crosses a Pocock boundary somewhere.
    ns = np.arange(3, 21)
    t = ns / 20
    levels = boundary_levels(tuple(float(x) for x in t), 0.05, "pocock")
    c = stats.norm.isf(np.array(levels) / 2)
    rng = np.random.default_rng(1)
    s = np.cumsum(rng.standard_normal((400_000, len(t))) * np.sqrt(np.diff(t, prepend=0)), 1)
    crossed = (np.abs(s / np.sqrt(t)) >= c).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=0.0015)
    assert np.allclose(levels, levels[0])  # Pocock: one level at every look
    assert 0.05 / 18 < levels[0] < 0.05 / 4  # far above the Bonferroni split over 18 looks


def test_an_adaptive_report_tests_at_the_boundary_with_repeated_intervals() -> None:
    # The report at 5 seeds per variant of {min 3, max 20, step 1} is look 3 of 18.
    spec = {"seeds": {"min": 3, "max": 20, "step": 1, "boundary": "pocock"}}
    report = _build(_trials({"a": A, "b": B}), spec, final=False)
    looks = report["design"]["looks"]
    assert (looks["current"], looks["planned"], looks["complete"]) == (3, 18, True)
    level = t_levels(tuple(range(3, 21)), 0.05, "pocock")[2]
    assert looks["level"] == pytest.approx(level)
    # The t-test's levels keep the normal boundary's shape (one level for Pocock), scaled
    # down a little: the t statistics of few seeds are less correlated across looks.
    normal = boundary_levels(tuple(n / 20 for n in range(3, 21)), 0.05, "pocock")[2]
    assert 0.6 * normal < level < normal
    assert report["design"]["sequential"] == "group_sequential_pocock"
    assert report["design"]["intervals"] == "repeated_pocock"
    assert report["interim"] is True
    p = report["pairwise"][0]
    res = stats.ttest_rel(A, B)
    rci = res.confidence_interval(1 - level)  # one pair: the family's level is the pair's
    assert p["ci95"] == pytest.approx([rci.low, rci.high], rel=1e-9)
    assert p["ci95_adjusted"] == pytest.approx([rci.low, rci.high], rel=1e-9)
    assert p["interval"] == "repeated_pocock"
    assert (p["conclusion"] in ("a_better", "b_better")) == (res.pvalue < level)
    # The same data under a list of seeds is one look at the full alpha.
    one = _build(_trials({"a": A, "b": B}), {"seeds": [0, 1, 2, 3, 4]})
    assert one["design"]["looks"]["level"] == 0.05
    assert one["design"]["sequential"] is None
    assert one["pairwise"][0]["interval"] == "t"


def test_a_clear_difference_is_decided_at_the_first_look_of_an_adaptive_design() -> None:
    weak = [0.70, 0.72, 0.71]
    strong = [0.95, 0.96, 0.955]
    spec = {"seeds": {"min": 3, "max": 20, "step": 1, "boundary": "pocock"}, "baseline": "weak"}
    report = _build(_trials({"weak": weak, "strong": strong}), spec, final=False)
    assert report["pairwise"][0]["conclusion"] == "b_better"
    assert needs_more_seeds(report) is False


def test_tiers_and_ranks_from_the_conclusions() -> None:
    values = {
        "w": [0.80, 0.81, 0.79, 0.80, 0.805],
        "x": [0.90, 0.91, 0.905, 0.895, 0.90],
        "y": [0.90, 0.91, 0.905, 0.895, 0.90],  # exactly x: a tie
        "z": [0.95, 0.962, 0.953, 0.946, 0.951],
        "few": [0.99, 0.995],
    }
    report = _build(_trials(values))
    by = {v["name"]: v for v in report["variants"]}
    assert report["ranking"] == ["z", "x", "y", "w", "few"]
    assert [by[n]["rank"] for n in report["ranking"]] == [1, 2, 2, 4, 5]
    # Recompute the tiers from the pairwise conclusions: best first, a tier is the best
    # remaining variant with every variant no tested pair shows apart from one in the tier.
    beaten = set()
    for p in report["pairwise"]:
        if p["conclusion"] == "a_better":
            beaten.add((p["a"], p["b"]))
        if p["conclusion"] == "b_better":
            beaten.add((p["b"], p["a"]))
    remaining, tier, expected = ["z", "x", "y", "w"], 1, {}
    while remaining:
        group = [remaining[0]]
        for v in remaining[1:]:
            if all((g, v) not in beaten and (v, g) not in beaten for g in group):
                group.append(v)
        expected.update(dict.fromkeys(group, tier))
        remaining = [v for v in remaining if v not in group]
        tier += 1
    assert {n: by[n]["tier"] for n in "zxyw"} == expected == {"z": 1, "x": 2, "y": 2, "w": 3}
    assert by["few"]["tier"] is None
    tie = _pair(report, "x", "y")
    # An exact tie on 5 seeds: no t-test; the exact sign test of equivalence gives 0.5^5,
    # which Holm over the 10 pairs does not bring under alpha.
    assert tie["exact_test"] == "sign"
    assert tie["equivalence_p"] == pytest.approx(0.5**5)
    assert tie["conclusion"] == "inconclusive"
    assert not any("other way" in n for n in report["notes"])


def test_tested_pairs() -> None:
    assert family(["a", "b", "c"], None) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert family(["a", "b", "c"], "b") == [("b", "a"), ("b", "c")]
    assert family(["a", "b"], "nope") == [("a", "b")]
    assert family(["a"], "a") == []


def test_baseline_family_is_k_minus_one_tests_baseline_first() -> None:
    report = _build(_trials({"a": A, "b": B, "c": C}), {"baseline": "c"})
    assert [(p["a"], p["b"]) for p in report["pairwise"]] == [("c", "a"), ("c", "b")]
    assert report["design"]["family_size"] == 2
    raw = [stats.ttest_rel(C, A).pvalue, stats.ttest_rel(C, B).pvalue]
    assert [p["p_adjusted"] for p in report["pairwise"]] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    assert report["verdict"].startswith("a is better than c")


def test_needs_more_seeds() -> None:
    close = {"a": A[:3], "b": B[:3]}
    adaptive = {"seeds": {"min": 3, "max": 6, "step": 1}}
    interim = _build(_trials(close), adaptive, final=False)
    assert interim["pairwise"][0]["conclusion"] == "inconclusive"
    assert needs_more_seeds(interim) is True
    assert needs_more_seeds(Report.model_validate(interim)) is True
    # Still running: the round has not ended, so no new round yet.
    running = [*_trials(close), make_trial("a", 3, None, status="running")]
    assert needs_more_seeds(_build(running, adaptive, final=False)) is False
    # At max (look 4 of 4) nothing more is added.
    at_max = _build(_trials({"a": [*A[:5], 0.93], "b": [*B[:5], 0.92]}), adaptive, final=False)
    assert at_max["design"]["looks"]["current"] == 4
    assert needs_more_seeds(at_max) is False
    # A list of seeds is never extended.
    assert needs_more_seeds(_build(_trials(close), {"seeds": [0, 1, 2]})) is False


def test_diverged_trials_count_and_are_said() -> None:
    trials = _trials({"a": A, "b": B})
    trials.append(make_trial("b", 7, 0.1, stop_reason="diverged", test_loss=float("nan")))
    report = _build(trials)
    by = {v["name"]: v for v in report["variants"]}
    assert (by["a"]["n_diverged"], by["b"]["n_diverged"]) == (0, 1)
    assert by["b"]["n"] == 6  # scored as it ended
    assert "b diverged (loss not finite) on 1 of 6 trials" in report["verdict"]
    assert any("1 trial diverged" in n for n in report["notes"])


def test_best_val_accuracy_gets_the_optimism_note() -> None:
    report = _build(_trials({"a": A, "b": B}), metric="best_val_accuracy")
    assert any("optimistically biased" in n for n in report["notes"])
    assert not any("optimistically" in n for n in _build(_trials({"a": A, "b": B}))["notes"])


def test_timing_spread() -> None:
    trials = [
        make_trial("a", s, 0.9, train_seconds=t, inference_ms_per_sample=i, val_curve=[])
        for s, (t, i) in enumerate([(6.0, 0.05), (9.0, 0.07), (7.5, 0.06)])
    ]
    v = _build(trials)["variants"][0]
    inference = np.array([0.05, 0.07, 0.06])
    assert v["inference_ms_per_sample_std"] == pytest.approx(inference.std(ddof=1))
    half = stats.t.ppf(0.975, 2) * inference.std(ddof=1) / math.sqrt(3)
    assert v["inference_ms_per_sample_ci95"] == pytest.approx(
        [inference.mean() - half, inference.mean() + half]
    )


def test_reports_validate_against_the_typed_model() -> None:
    diff = PairDifference(a="a", b="b", disagreement=0.1, sentence="a and b disagree on 10%.")
    for report in (
        _build(_trials({"a": A, "b": B, "c": C}), differences=[diff]),
        _build(_trials({"a": A[:2]}), final=False),
        _build([], final=False),
        _build(_trials({"a": A, "b": B}), {"seeds": {"min": 3, "max": 9, "step": 2}}),
    ):
        Report.model_validate(report)
    with_diff = _build(_trials({"a": A, "b": B}), differences=[diff])
    assert with_diff["differences"][0]["disagreement"] == 0.1
    assert with_diff["verdict"].endswith("a and b disagree on 10%.")


_spec = st.fixed_dictionaries(
    {
        "seeds": st.one_of(
            st.lists(st.integers(0, 9), min_size=1, max_size=6, unique=True),
            st.builds(
                lambda lo, extra, step: {"min": lo, "max": lo + extra, "step": step},
                st.integers(1, 5),
                st.integers(0, 10),
                st.integers(1, 4),
            ),
        ),
        "baseline": st.sampled_from([None, "a", "b", "zz"]),
        "equivalence_margin": st.sampled_from([0.0001, 0.01, 0.5]),
        "split": st.sampled_from(["per_seed", "fixed"]),
    }
)
_row = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 12),
    st.sampled_from(["succeeded", "succeeded", "succeeded", "failed", "running"]),
    st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0.5, 0.9])),
    st.sampled_from([None, None, "diverged", "early_stopping"]),
)


@pytest.mark.slow  # 80 random reports
@settings(max_examples=80, deadline=None)
@given(st.lists(_row, max_size=30), _spec, st.booleans())
def test_any_spec_and_trials_give_a_report_the_typed_model_accepts(
    rows: list[tuple[str, int, str, float | None, str | None]],
    spec: dict[str, Any],
    final: bool,
) -> None:
    seen: set[tuple[str, int]] = set()
    trials = []
    for variant, seed, status, value, stop in rows:
        if (variant, seed) in seen:
            continue
        seen.add((variant, seed))
        trials.append(make_trial(variant, seed, value, status=status, stop_reason=stop))
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["a", "b", "c"],
        trials=trials,
        final=final,
        design=DesignSpec.model_validate(spec),
    )
    json.dumps(report, allow_nan=False)
    Report.model_validate(report)  # the api's response_model: never a 500
    for p in report["pairwise"]:
        assert p["significant"] == (p["conclusion"] in ("a_better", "b_better"))
        if p["conclusion"] in ("untested", "a_better", "b_better", "equivalent"):
            assert p["seeds_needed"] is None
    assert isinstance(needs_more_seeds(report), bool)


def test_a_tier_never_holds_a_significantly_different_pair() -> None:
    """Against a baseline only the baseline's pairs are tested: the leader (better than the
    baseline by an undecided margin) has no test against a variant the baseline clearly
    beats, yet that variant must not share the baseline's tier."""
    values = {
        "base": [0.900, 0.910, 0.905, 0.895, 0.902],
        "top": [0.915, 0.905, 0.912, 0.899, 0.910],
        "low": [0.700, 0.712, 0.705, 0.690, 0.703],
    }
    report = _build(_trials(values), {"baseline": "base", "seeds": [0, 1, 2, 3, 4]})
    by = {v["name"]: v for v in report["variants"]}
    assert _pair(report, "base", "low")["conclusion"] == "a_better"
    assert _pair(report, "base", "top")["conclusion"] != "b_better"
    for p in report["pairwise"]:
        if p["conclusion"] in ("a_better", "b_better"):
            assert by[p["a"]]["tier"] != by[p["b"]]["tier"], p
    assert (by["top"]["tier"], by["base"]["tier"], by["low"]["tier"]) == (1, 1, 2)


def test_named_pairs_are_the_tested_family_and_holm_runs_over_them() -> None:
    values = {"a": A, "b": B, "c": C}
    report = _build(_trials(values), {"pairs": [["c", "a"], ["b", "c"]]})
    assert [(p["a"], p["b"]) for p in report["pairwise"]] == [("c", "a"), ("b", "c")]
    assert report["design"]["family_size"] == 2
    assert report["design"]["pairs"] == [["c", "a"], ["b", "c"]]
    raw = [stats.ttest_rel(C, A).pvalue, stats.ttest_rel(B, C).pvalue]
    holm_p = multipletests(raw, method="holm")[1]
    assert [p["p_adjusted"] for p in report["pairwise"]] == pytest.approx(list(holm_p))
    assert family(["a", "b", "c"], "a", [("b", "c"), ("c", "b"), ("a", "a")]) == [("b", "c")]
