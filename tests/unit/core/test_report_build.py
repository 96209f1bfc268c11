"""build_report on crafted trials: aggregates, pairs, ranking, verdict and notes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.report.build import REPORT_ROW_COLUMNS, TrialResult, build_report, report_rows
from core.report.render import render_markdown, render_text
from models.analysis import Analysis

Factory = Callable[..., TrialResult]
ORDER = ["conv128", "conv64x2", "conv64x3"]


def _build(
    trials: Sequence[TrialResult],
    *,
    order: Sequence[str] = ORDER,
    metric: str = "test_accuracy",
    final: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    return build_report(
        comparison_id="c-1",
        primary_metric=metric,
        variant_order=order,
        trials=trials,
        final=final,
        **kwargs,
    )


def _variant(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in report["variants"] if v["name"] == name)


def _pair(report: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    return next(p for p in report["pairwise"] if (p["a"], p["b"]) == (a, b))


def _seeds(trial: Factory, name: str, values: Sequence[float], **kw: Any) -> list[TrialResult]:
    return [trial(name, seed, v, **kw) for seed, v in enumerate(values)]


@pytest.fixture
def article(trial: Factory) -> list[TrialResult]:
    """The article's three models, three seeds each; conv64x2 and conv64x3 clearly beat conv128."""
    return [
        *_seeds(trial, "conv128", [0.941, 0.945, 0.938], params=866_570, flops=86_000_000),
        *_seeds(trial, "conv64x2", [0.975, 0.978, 0.973], params=129_738, flops=60_000_000),
        *_seeds(trial, "conv64x3", [0.977, 0.972, 0.979], params=150_000, flops=70_000_000),
    ]


def test_report_has_the_contract_keys(article: list[TrialResult]) -> None:
    report = _build(article)
    for key in ("comparison_id", "final", "primary_metric", "higher_is_better", "variants"):
        assert key in report
    for key in ("pairwise", "ranking", "verdict", "notes"):
        assert key in report
    variant_keys = {"name", "params", "flops", "n", "n_failed", "n_running", "mean", "std"}
    variant_keys |= {"ci95", "min", "max", "test_loss", "best_val_accuracy", "per_seed"}
    variant_keys |= {"final_val_accuracy", "epochs_to_95pct_best", "auc_val_accuracy"}
    variant_keys |= {"train_seconds_mean", "seconds_per_epoch_mean", "inference_ms_per_sample_mean"}
    assert variant_keys <= set(report["variants"][0])
    pair_keys = {"a", "b", "diff", "ci95", "p_value", "p_adjusted", "effect_size", "significant"}
    assert pair_keys | {"n_a", "n_b"} <= set(report["pairwise"][0])


def test_variant_aggregates_match_numpy_and_the_t_interval(article: list[TrialResult]) -> None:
    v = _variant(_build(article), "conv128")
    values = [0.941, 0.945, 0.938]
    sd = float(np.std(values, ddof=1))
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert v["n"] == 3
    assert v["mean"] == pytest.approx(np.mean(values))
    assert v["std"] == pytest.approx(sd)
    assert v["ci95"] == pytest.approx([np.mean(values) - half, np.mean(values) + half])
    assert (v["min"], v["max"]) == (0.938, 0.945)
    assert v["per_seed"] == [{"seed": s, "value": x} for s, x in enumerate(values)]
    assert v["test_loss"]["mean"] == pytest.approx(1 - np.mean(values))
    assert v["train_seconds_mean"] == pytest.approx(6.0)
    assert v["seconds_per_epoch_mean"] == pytest.approx(2.0)
    assert v["rank"] == 3


def test_curve_summaries_by_hand(trial: Factory) -> None:
    trials = [
        trial("a", 0, 0.9, val_curve=[0.5, 0.86, 0.9]),  # 0.95 * 0.9 = 0.855: epoch 2
        trial("a", 1, 0.8, val_curve=[0.8, 0.7, 0.6]),  # best at epoch 1
    ]
    v = _variant(_build(trials, order=["a"]), "a")
    assert v["epochs_to_95pct_best"] == pytest.approx(1.5)
    assert v["auc_val_accuracy"] == pytest.approx(((0.5 + 0.86 + 0.9) / 3 + 0.7) / 2)
    assert v["best_val_accuracy"]["mean"] == pytest.approx(0.85)
    assert v["final_val_accuracy"]["mean"] == pytest.approx(0.75)


def test_pairwise_matches_scipy_and_holm(article: list[TrialResult]) -> None:
    report = _build(article)
    assert [(p["a"], p["b"]) for p in report["pairwise"]] == [
        ("conv128", "conv64x2"),
        ("conv128", "conv64x3"),
        ("conv64x2", "conv64x3"),
    ]
    raw = []
    groups = {"conv128": [0.941, 0.945, 0.938], "conv64x2": [0.975, 0.978, 0.973]}
    groups["conv64x3"] = [0.977, 0.972, 0.979]
    for p in report["pairwise"]:
        a, b = groups[p["a"]], groups[p["b"]]
        # Same seeds on both sides: the paired t-test on the per-seed differences.
        expected = stats.ttest_rel(a, b)
        assert p["test"] == "paired_t"
        assert p["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert p["diff"] == pytest.approx(np.mean(a) - np.mean(b))
        assert p["correlation"] == pytest.approx(stats.pearsonr(a, b).statistic, rel=1e-9)
        assert (p["n_a"], p["n_b"]) == (3, 3)
        raw.append(expected.pvalue)
    order = np.argsort(raw)
    m = len(raw)
    holm = np.maximum.accumulate([min(1.0, (m - k) * raw[i]) for k, i in enumerate(order)])
    for k, i in enumerate(order):
        assert report["pairwise"][i]["p_adjusted"] == pytest.approx(holm[k])
    assert [p["significant"] for p in report["pairwise"]] == [True, True, False]
    assert [p["conclusion"] for p in report["pairwise"]] == [
        "b_better",
        "b_better",
        "inconclusive",
    ]


def test_clear_winner_verdict_names_winner_loser_and_adjusted_p(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "conv128", [0.941, 0.945, 0.938]),
        *_seeds(trial, "conv64x3", [0.977, 0.975, 0.979]),
    ]
    report = _build(trials, order=["conv128", "conv64x3"])
    verdict = report["verdict"]
    assert verdict.startswith(
        "conv64x3 is better than conv128: 97.70% vs 94.13% test accuracy, by 3.57 points "
        "(unadjusted 95% CI +2.20 to +4.93; adjusted p = 0.008; Hedges' g "
    )
    # The interval (+2.20 to +4.93) lies wholly beyond the default one-point margin.
    assert verdict.endswith(", 3 seeds; the gap is beyond the ±1.00 point margin.")
    assert report["pairwise"][0]["practical"] == "beyond_margin"
    assert verdict.count(". ") == 0  # one pair, one sentence
    assert report["ranking"] == ["conv64x3", "conv128"]


def test_verdict_with_winner_and_tie(article: list[TrialResult]) -> None:
    sentences = _build(article)["verdict"].split(". ")
    assert len(sentences) == 3  # one per tested pair, in the family's order
    assert sentences[0].startswith("conv64x2 is better than conv128: 97.53% vs 94.13%")
    assert sentences[1].startswith("conv64x3 is better than conv128: 97.60% vs 94.13%")
    assert sentences[2].startswith(
        "conv64x2 vs conv64x3 is inconclusive with 3 seeds: conv64x2 - conv64x3 = -0.07 points"
    )
    assert "seeds per variant would decide it" in sentences[2]


def test_everything_indistinguishable(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.90, 0.95, 0.92]), *_seeds(trial, "b", [0.91, 0.94, 0.93])]
    report = _build(trials, order=["a", "b"])
    assert not any(p["significant"] for p in report["pairwise"])
    assert report["pairwise"][0]["conclusion"] == "inconclusive"
    assert report["verdict"].startswith("a vs b is inconclusive with 3 seeds: a - b = -0.33 points")
    assert any("smaller than the seed-to-seed spread" in n for n in report["notes"])
    # Not significantly different: one tier, ranks by mean.
    assert [(_variant(report, n)["rank"], _variant(report, n)["tier"]) for n in "ab"] == [
        (2, 1),
        (1, 1),
    ]


def test_one_seed_gives_no_interval_no_test_and_a_note(trial: Factory) -> None:
    report = _build([trial("a", 0, 0.9), trial("b", 0, 0.8)], order=["a", "b"])
    a = _variant(report, "a")
    assert (a["n"], a["std"], a["ci95"], a["mean"]) == (1, None, None, 0.9)
    pair = report["pairwise"][0]
    assert pair["diff"] == pytest.approx(0.1)
    assert (pair["p_value"], pair["p_adjusted"], pair["ci95"], pair["effect_size"]) == (
        None,
        None,
        None,
        None,
    )
    assert pair["significant"] is False
    assert pair["conclusion"] == "untested"
    assert report["verdict"] == (
        "a vs b is untested: a has 1 seed and b has 1 seed, fewer than 3; "
        "so far 90.00% vs 80.00% test accuracy."
    )
    assert any(
        n.startswith("a has only 1 finished seed: no confidence interval") for n in report["notes"]
    )


def test_two_seeds_run_no_test_and_say_so(trial: Factory) -> None:
    # Two seeds a side would give p ~ 0.03 here: with 1 to 2 degrees of freedom that is
    # noise, so no test is run at all (no p-value, nothing in the Holm family).
    trials = [*_seeds(trial, "a", [0.90, 0.91]), *_seeds(trial, "b", [0.80, 0.82])]
    report = _build(trials, order=["a", "b"])
    pair = report["pairwise"][0]
    assert pair["diff"] == pytest.approx(0.095)
    assert (pair["p_value"], pair["p_adjusted"], pair["ci95"], pair["effect_size"]) == (
        None,
        None,
        None,
        None,
    )
    assert (pair["significant"], pair["conclusion"], pair["seeds_needed"]) == (
        False,
        "untested",
        None,
    )
    assert "a vs b is untested: a has 2 seeds and b has 2 seeds, fewer than 3" in report["verdict"]
    notes = report["notes"]
    assert any("only 2 finished seeds" in n and "no significance test" in n for n in notes)
    # The old false note ("each gave one test accuracy on every seed") is gone.
    assert not any("every seed" in n for n in notes)


def test_a_variant_with_too_few_seeds_is_left_out_of_the_tests(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.941, 0.945, 0.938]),
        *_seeds(trial, "b", [0.977, 0.975, 0.979]),
        *_seeds(trial, "c", [0.990, 0.991]),
    ]
    report = _build(trials, order=["a", "b", "c"])
    pairs = {(p["a"], p["b"]): p for p in report["pairwise"]}
    assert pairs[("a", "b")]["significant"] is True
    # The Holm family is the planned one (3 pairs), not only the testable pair: an interim
    # report cannot win by a smaller family.
    raw = pairs[("a", "b")]["p_value"]
    assert pairs[("a", "b")]["p_adjusted"] == pytest.approx(min(1.0, 3 * raw))
    for key in (("a", "c"), ("b", "c")):
        assert pairs[key]["p_value"] is None
        assert pairs[key]["significant"] is False
        assert pairs[key]["conclusion"] == "untested"
    # A variant under 3 seeds never ranks above a tested one, and has no tier.
    assert report["ranking"] == ["b", "a", "c"]
    assert [_variant(report, n)["tier"] for n in "abc"] == [2, 1, None]
    verdict = report["verdict"]
    assert verdict.startswith("b is better than a: 97.70% vs 94.13% test accuracy, by 3.57 ")
    assert verdict.endswith(
        "b vs c is untested: c has 2 seeds, fewer than 3; so far 97.70% vs 99.05% test accuracy."
    )


def test_identical_results_are_not_significant(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.9] * 3), *_seeds(trial, "b", [0.9] * 3)]
    report = _build(trials, order=["a", "b"])
    pair = report["pairwise"][0]
    assert pair["diff"] == 0.0
    assert (pair["p_value"], pair["ci95"], pair["effect_size"]) == (None, None, None)
    assert pair["significant"] is False
    # No spread: the exact sign test of equivalence, 0.5^3 = 0.125 on 3 seeds, cannot decide.
    assert pair["exact_test"] == "sign"
    assert pair["equivalence_p"] == pytest.approx(stats.binomtest(3, 3, 0.5, "greater").pvalue)
    assert pair["conclusion"] == "inconclusive"
    assert _variant(report, "a")["std"] == 0.0
    assert [(v["rank"], v["tier"]) for v in report["variants"]] == [(1, 1), (1, 1)]
    assert report["verdict"].startswith("a vs b is inconclusive: a - b = +0.00 points on every")
    assert not any("other way" in n for n in report["notes"])  # an exact tie has no order
    json.dumps(report, allow_nan=False)
    # Five tied seeds decide it: 0.5^5 < 0.05.
    five = [*_seeds(trial, "a", [0.9] * 5), *_seeds(trial, "b", [0.9] * 5)]
    pair = _build(five, order=["a", "b"])["pairwise"][0]
    assert pair["equivalence_p"] == pytest.approx(0.5**5)
    assert pair["conclusion"] == "equivalent"


def test_identical_single_seeds_say_tie_not_lead(trial: Factory) -> None:
    report = _build([trial("a", 0, 0.9), trial("b", 0, 0.9)], order=["a", "b"])
    assert report["verdict"].endswith("so far 90.00% vs 90.00% test accuracy.")
    assert [v["rank"] for v in report["variants"]] == [1, 1]  # exact ties share a rank


@pytest.mark.parametrize("gap", [0.005, 0.02])
def test_constant_differences_are_judged_by_one_exact_rule_both_ways(
    trial: Factory, gap: float
) -> None:
    """A constant gap inside the margin (0.5 point) and one beyond it (2 points) follow the
    same rule: undecided on 3 seeds, decided better on 6 by the exact sign test (whose
    p-values are recomputed with scipy), the small one "within the margin"."""
    for n, decided in ((3, False), (6, True)):
        trials = [*_seeds(trial, "a", [0.9 + gap] * n), *_seeds(trial, "b", [0.9] * n)]
        report = _build(trials, order=["a", "b"])
        pair = report["pairwise"][0]
        assert pair["exact_test"] == "sign"
        assert pair["p_value"] == pytest.approx(stats.binomtest(n, n, 0.5).pvalue)
        inside = n if gap < 0.01 else 0
        tost = stats.binomtest(inside, n, 0.5, alternative="greater").pvalue
        assert pair["equivalence_p"] == pytest.approx(tost)
        assert pair["conclusion"] == ("a_better" if decided else "inconclusive")
        if decided:
            margin = "within_margin" if gap < 0.01 else "beyond_margin"
            assert pair["practical"] == margin
        if not decided:
            assert "with no spread" in report["verdict"]
            tiers = {v["name"]: v["tier"] for v in report["variants"]}
            assert tiers == {"a": 1, "b": 1}


def test_different_constants_get_no_test_and_a_note(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.9] * 3), *_seeds(trial, "b", [0.8] * 3)]
    report = _build(trials, order=["a", "b"])
    pair = report["pairwise"][0]
    assert pair["exact_test"] == "sign"
    assert pair["p_value"] == pytest.approx(0.25)
    assert pair["significant"] is False
    assert pair["conclusion"] == "inconclusive"
    assert any("the t-test is undefined" in n for n in report["notes"])
    assert report["verdict"].startswith(
        "a vs b is inconclusive: a - b = +10.00 points on every one of 3 seeds, with no "
        "spread across seeds, so no t-test is possible (exact sign test adjusted p = 0.250"
    )


def test_failed_and_running_trials_are_left_out_and_noted(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.90, 0.91, 0.92]),
        trial("a", 3, None, status="failed"),
        trial("a", 4, None, status="running"),
        trial("a", 5, None, status="queued"),
        trial("a", 6, None, status="cancelled"),
    ]
    a = _variant(_build(trials, order=["a"]), "a")
    assert (a["n"], a["n_failed"], a["n_running"], a["n_cancelled"]) == (3, 1, 2, 1)
    assert a["mean"] == pytest.approx(0.91)
    notes = _build(trials, order=["a"])["notes"]
    assert "a: 1 failed trial (seed 3) left out of the statistics." in notes
    assert "a: 1 cancelled trial (seed 6) left out of the statistics." in notes


def test_params_ratio_note_uses_the_articles_counts(article: list[TrialResult]) -> None:
    notes = _build(article)["notes"]
    assert (
        "conv128 has 6.7x the parameters of conv64x2 (866,570 vs 129,738): a difference in "
        "test accuracy may come from capacity, not from the architecture's design."
    ) in notes
    assert not any("FLOPs" in n for n in notes)  # 86M vs 60M is under 2x


def test_flops_ratio_note_and_variant_info_fallback(trial: Factory) -> None:
    trials = _seeds(trial, "a", [0.9, 0.91, 0.92], params=1000, flops=1000)
    analysis = Analysis(
        input_shape=(4,),
        output_shape=(10,),
        params=1500,
        trainable_params=1500,
        non_trainable_params=0,
        flops=5000,
    )
    report = _build(trials, order=["a", "b"], variant_info={"b": analysis})
    b = _variant(report, "b")
    assert (b["params"], b["flops"], b["n"], b["mean"], b["rank"]) == (1500, 5000, 0, None, None)
    assert b["analysis"] == analysis.to_dict()
    assert b["analysis"]["params"] == 1500
    assert "b has 5.0x the FLOPs of a (5,000 vs 1,000)" in " ".join(report["notes"])
    assert not any("the parameters of" in n for n in report["notes"])
    assert report["ranking"] == ["a", "b"]
    assert "b has no finished trial, so it is not compared." in report["notes"]


def test_early_stopping_note(trial: Factory) -> None:
    trials = [
        trial("a", 0, 0.9, stop_reason="early_stopping"),
        trial("a", 1, 0.91, stop_reason="time_budget"),
        trial("a", 2, 0.92, stop_reason="early_stopping"),
    ]
    report = _build(trials, order=["a"])
    assert _variant(report, "a")["stopped_early"] == {"early_stopping": 2, "time_budget": 1}
    assert (
        "a: 3 of 3 trials stopped before their planned epochs (2 by early stopping, 1 by the "
        "time budget), so not every trial trained for the same budget."
    ) in report["notes"]


def test_partial_report_prefix_and_note(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.90, 0.91, 0.92]),
        *_seeds(trial, "b", [0.80, 0.83, 0.82]),
        trial("b", 3, None, status="running"),
    ]
    report = _build(trials, order=["a", "b"], final=False)
    assert report["final"] is False
    assert report["interim"] is True
    assert report["design"]["looks"]["complete"] is False
    # The trials so far would give p < 0.05; an interim report withholds the conclusion.
    pair = report["pairwise"][0]
    assert pair["p_value"] < 0.05
    assert (pair["conclusion"], pair["significant"]) == ("inconclusive", False)
    assert report["verdict"].startswith(
        "Interim result (6 of 7 trials finished): a vs b: no conclusion until this look's "
        "trials end; so far a - b = +9.33 points"
    )
    assert report["notes"][0] == (
        "This report is partial: 6 trials finished and 1 still queued or running, "
        "so the numbers will change."
    )


def test_no_finished_trial_yet(trial: Factory) -> None:
    running = [trial("a", 0, None, status="running"), trial("b", 0, None, status="queued")]
    report = _build(running, order=["a", "b"], final=False)
    assert report["verdict"] == "No trial has finished yet."
    assert report["ranking"] == ["a", "b"]
    assert all(v["mean"] is None and v["rank"] is None for v in report["variants"])
    json.dumps(report, allow_nan=False)
    failed = _build([trial("a", 0, None, status="failed")], order=["a"])
    assert failed["verdict"].startswith("No trial succeeded (1 failed or cancelled)")


def test_single_variant(trial: Factory) -> None:
    report = _build(_seeds(trial, "a", [0.90, 0.91, 0.92]), order=["a"])
    assert report["pairwise"] == []
    assert report["verdict"] == (
        "a reaches 91.00% test accuracy (95% CI 88.52% to 93.48%, 3 seeds); "
        "there is no other variant to compare it with."
    )


def test_lower_is_better_ranking_with_test_loss(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.9, 0.9, 0.9], test_loss=0.30),
        *[trial("b", s, 0.9, test_loss=x) for s, x in enumerate([0.10, 0.12, 0.115])],
        *[trial("c", s, 0.9, test_loss=x) for s, x in enumerate([0.20, 0.22, 0.21])],
    ]
    report = _build(trials, order=["a", "b", "c"], metric="test_loss")
    assert report["higher_is_better"] is False
    assert report["ranking"] == ["b", "c", "a"]
    assert _variant(report, "b")["mean"] == pytest.approx(0.335 / 3)
    sentences = report["verdict"].split(". ")
    assert sentences[0].startswith("b is better than a: 0.1117 vs 0.3000 test loss, by 0.1883 ")
    assert sentences[1].startswith("c is better than a: 0.2100 vs 0.3000 test loss, by 0.0900 ")
    assert sentences[2].startswith("b is better than c: 0.1117 vs 0.2100 test loss, by 0.0983 ")
    assert [_variant(report, n)["tier"] for n in "abc"] == [3, 1, 2]


def test_unknown_metric_is_refused(trial: Factory) -> None:
    with pytest.raises(ValueError, match="primary metric"):
        _build([trial("a", 0, 0.9)], order=["a"], metric="f1")


def test_non_finite_inputs_never_reach_the_json(trial: Factory) -> None:
    trials = [
        trial("a", 0, float("nan")),
        trial("a", 1, 0.9, train_seconds=float("inf")),
        trial("a", 2, 0.91, test_loss=float("nan")),
        trial("b", 0, 0.8, inference_ms_per_sample=float("nan")),
    ]
    report = _build(trials, order=["a", "b"])
    json.dumps(report, allow_nan=False)
    a = _variant(report, "a")
    assert a["n"] == 2
    assert a["seeds_without_metric"] == [0]
    assert "a: 1 succeeded trial without a finite test accuracy (seed 0) left out" in " ".join(
        report["notes"]
    )


def test_variants_outside_the_order_are_appended(trial: Factory) -> None:
    report = _build([trial("x", 0, 0.9), trial("a", 0, 0.8)], order=["a", "a"])
    assert [v["name"] for v in report["variants"]] == ["a", "x"]


def test_report_rows(article: list[TrialResult]) -> None:
    report = _build(article)
    rows = report_rows(report)
    assert [r["name"] for r in rows] == ORDER
    assert all(list(r) == list(REPORT_ROW_COLUMNS) for r in rows)
    first = rows[0]
    assert first["ci95_lo"] == report["variants"][0]["ci95"][0]
    assert (first["params"], first["n"], first["rank"]) == (866_570, 3, 3)


_status = st.sampled_from(["succeeded", "succeeded", "succeeded", "failed", "running"])
_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.just(0.9))


@pytest.mark.slow  # 60 random reports: a minute or more on a busy machine
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _status, _value), min_size=0, max_size=12),
    st.sampled_from(["test_accuracy", "test_loss", "best_val_accuracy"]),
    st.booleans(),
)
def test_any_input_gives_json_safe_consistent_report(
    trial: Factory, rows: list[tuple[str, str, float | None]], metric: str, final: bool
) -> None:
    trials = [
        trial(v, i, x, status=s, val_curve=[] if x is None else [0.5, 0.6])
        for i, (v, s, x) in enumerate(rows)
    ]
    report = _build(trials, order=["a", "b", "c"], metric=metric, final=final)
    json.dumps(report, allow_nan=False)
    assert len(report["pairwise"]) == 3
    assert sorted(report["ranking"]) == ["a", "b", "c"]
    assert isinstance(report["verdict"], str)
    assert report["verdict"].endswith(".")
    complete = report["design"]["looks"]["complete"]
    for p in report["pairwise"]:
        # One look at the full alpha: significant means Holm-adjusted p < 0.05, and only
        # once every trial has ended (an interim report never claims a difference).
        below = p["p_adjusted"] is not None and p["p_adjusted"] < 0.05
        assert p["significant"] == (below and complete)
        assert p["significant"] == (p["conclusion"] in ("a_better", "b_better"))
    assert "a" in render_text(report)
    assert "| a |" in render_markdown(report, title="any")


def test_an_unadjusted_interval_is_labelled_in_the_verdict(trial: Factory) -> None:
    """A verdict once read "not distinguishable (95% CI 0.6 to 8.4, adjusted p = 0.093)". An
    inconclusive pair of a family of three whose unadjusted interval excludes zero must say
    that interval is unadjusted, next to the adjusted p."""
    values = {
        "a": [0.896, 0.892, 0.911, 0.889, 0.894],
        "b": [0.924, 0.927, 0.919, 0.901, 0.901],
        "c": [0.941, 0.938, 0.946, 0.963, 0.952],
    }
    trials = [t for name, xs in values.items() for t in _seeds(trial, name, xs)]
    report = _build(trials, order=list(values))
    p = report["pairwise"][0]
    assert p["conclusion"] == "inconclusive"
    assert p["ci95"][1] < 0 < p["ci95_adjusted"][1]
    assert "(95% CI" not in report["verdict"]
    assert (
        "a vs b is inconclusive with 5 seeds: a - b = -1.80 points (unadjusted 95% CI "
        in (report["verdict"])
    )
