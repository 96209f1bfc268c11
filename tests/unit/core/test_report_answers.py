"""What the report says a pair means: the margin's reading, the equivalence interval, the
level beside a sequential p-value, seeds needed against ``max``, variant intervals inside
their range, and diverged trials counted for every primary metric. Each figure is
recomputed with scipy or statsmodels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from core.report.build import TrialResult, build_report
from core.report.schema import PairDifference
from core.spec import DesignSpec
from tests.support.trials import make_trial


def _build(
    values: Mapping[str, Sequence[float]],
    spec: dict[str, Any] | None = None,
    *,
    metric: str = "test_accuracy",
    extra: Sequence[TrialResult] = (),
    final: bool = True,
) -> dict[str, Any]:
    loss = metric == "test_loss"
    trials = [
        make_trial(name, s, 0.9, val_curve=[], test_loss=x)
        if loss
        else make_trial(name, s, x, val_curve=[])
        for name, xs in values.items()
        for s, x in enumerate(xs)
    ]
    return build_report(
        comparison_id="c",
        primary_metric=metric,
        variant_order=list(values),
        trials=[*trials, *extra],
        final=final,
        design=None if spec is None else DesignSpec.model_validate(spec),
    )


A = [0.9512, 0.9530, 0.9505, 0.9521, 0.9518, 0.9509]
B = [0.9500, 0.9517, 0.9494, 0.9509, 0.9505, 0.9497]  # about 0.12 points below A, steadily


def test_better_within_the_margin_is_called_negligible_and_the_tost_interval_is_90() -> None:
    report = _build({"a": A, "b": B}, {"equivalence_margin": 0.01})
    p = report["pairwise"][0]
    assert p["conclusion"] == "a_better"
    ci = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert p["ci95"] == pytest.approx([ci.low, ci.high])
    assert ci.low > 0
    assert ci.high < 0.01
    assert p["practical"] == "within_margin"
    assert "within the ±1.00 point margin: negligible in practice" in report["verdict"]
    # The 90% interval matches statsmodels' 5% TOST: inside ±margin and p < 0.05 together.
    ci90 = stats.ttest_rel(A, B).confidence_interval(0.90)
    assert p["equivalence_ci90"] == pytest.approx([ci90.low, ci90.high])
    assert p["equivalence_p"] == pytest.approx(
        ttost_paired(np.array(A), np.array(B), -0.01, 0.01)[0]
    )


def test_better_beyond_and_undetermined_against_the_margin() -> None:
    far = [x - 0.03 for x in B]
    beyond = _build({"a": A, "b": far}, {"equivalence_margin": 0.01})["pairwise"][0]
    assert (beyond["conclusion"], beyond["practical"]) == ("a_better", "beyond_margin")
    near = [x - 0.0095 for x in B]
    rng = np.random.default_rng(0)
    noisy = [x + e for x, e in zip(near, rng.normal(0, 0.004, len(B)), strict=True)]
    mid = _build({"a": A, "b": noisy}, {"equivalence_margin": 0.01})["pairwise"][0]
    if mid["conclusion"] == "a_better":
        lo, hi = mid["ci95"]
        assert lo < 0.01 < hi
        assert mid["practical"] == "undetermined"
    eq = _build({"a": A, "b": A[::-1]}, {"equivalence_margin": 0.01})["pairwise"][0]
    assert eq["practical"] is None  # not better


def test_a_sequential_p_value_is_given_with_its_level() -> None:
    rng = np.random.default_rng(2)
    a = list(0.9 + rng.normal(0, 0.01, 5))
    b = list(np.array(a) - 0.004 + rng.normal(0, 0.01, 5))
    report = _build({"a": a, "b": b}, {"seeds": {"min": 3, "max": 8, "step": 1}}, final=False)
    p = report["pairwise"][0]
    assert p["conclusion"] == "inconclusive"
    assert (
        f"p = {p['p_value']:.2g}, not below the level {p['level']:.2g} of look 3 of 6"
        in (report["verdict"])
    )
    assert "95% repeated CI" in report["verdict"]


def test_seeds_needed_beyond_max_says_that_max_must_rise() -> None:
    rng = np.random.default_rng(5)
    a = list(0.9 + rng.normal(0, 0.02, 4))
    b = list(np.array(a) - 0.002 + rng.normal(0, 0.02, 4))
    report = _build({"a": a, "b": b}, {"seeds": {"min": 3, "max": 4, "step": 1}})
    p = report["pairwise"][0]
    assert p["conclusion"] == "inconclusive"
    assert p["seeds_needed"] > 4
    assert p["seeds_needed_beyond_max"] is True
    assert "beyond the design's max of 4, which would have to rise" in report["verdict"]


def test_no_rank_reversal_note_when_the_paired_interval_excludes_zero() -> None:
    # A steady gap smaller than the spread across seeds: paired, the interval excludes zero.
    base = [0.80, 0.90, 0.85, 0.95, 0.88, 0.83]
    values = {"a": base, "b": [x - 0.004 for x in base], "c": [x - 0.002 for x in base]}
    report = _build(values)
    for p in report["pairwise"]:
        if p["ci95"] and p["ci95"][0] * p["ci95"][1] > 0:
            assert not any(f"between {p['a']} and {p['b']}" in n for n in report["notes"])


@pytest.mark.parametrize(("metric", "n_reports"), [("test_accuracy", 400), ("test_loss", 200)])
def test_variant_intervals_stay_in_the_metric_range(metric: str, n_reports: int) -> None:
    rng = np.random.default_rng(9)
    for _ in range(n_reports):
        n = int(rng.integers(2, 4))
        if metric == "test_accuracy":
            values = {v: list(np.clip(0.995 + rng.normal(0, 0.006, n), 0, 1)) for v in "ab"}
        else:
            values = {v: list(np.abs(rng.normal(0.01, 0.02, n))) for v in "ab"}
        report = _build(values, metric=metric)
        for v in report["variants"]:
            lo, hi = v["ci95"]
            assert lo >= 0.0
            if metric == "test_accuracy":
                assert hi <= 1.0
            assert lo <= v["mean"] <= hi


@pytest.mark.slow
def test_no_variant_interval_leaves_its_range_in_ten_thousand_reports() -> None:
    rng = np.random.default_rng(10)
    outside = 0
    for _ in range(10_000):
        n = int(rng.integers(2, 6))
        values = {v: list(np.clip(0.99 + rng.normal(0, 0.01, n), 0, 1)) for v in "ab"}
        for v in _build(values)["variants"]:
            outside += not (0.0 <= v["ci95"][0] <= v["ci95"][1] <= 1.0)
    assert outside == 0


def test_two_tied_seeds_get_an_honest_sentence() -> None:
    report = _build({"a": [0.9, 0.9], "b": [0.8, 0.85]})
    a = next(v for v in report["variants"] if v["name"] == "a")
    assert a["ci95"] == [0.9, 0.9]
    note = next(n for n in report["notes"] if n.startswith("a has only 2"))
    assert "zero width" in note
    assert "wide" not in note


def test_diverged_trials_count_against_their_variant_for_test_loss() -> None:
    nan_trial = make_trial(
        "b", 3, 0.1, val_curve=[], test_loss=float("nan"), stop_reason="diverged"
    )
    losses = {"a": [0.30, 0.31, 0.29, 0.30], "b": [0.28, 0.29, 0.27]}
    report = _build(losses, metric="test_loss", extra=[nan_trial])
    b = next(v for v in report["variants"] if v["name"] == "b")
    assert b["n"] == 4
    assert b["diverged_scored_worst"] == [3]
    assert b["seeds_without_metric"] == []
    worst = max(x for xs in losses.values() for x in xs)
    assert b["mean"] == pytest.approx(np.mean([0.28, 0.29, 0.27, worst]))
    assert any("count against the variant" in n for n in report["notes"])
    assert report["pairwise"][0]["n_paired"] == 4


def test_a_pair_decided_at_an_earlier_look_gives_that_look_s_p_and_level() -> None:
    values = {
        "conv128": [0.941, 0.945, 0.938, 0.943],
        "conv64x2": [0.975, 0.978, 0.973, 0.976],
    }
    spec = {"baseline": "conv128", "seeds": {"min": 3, "max": 6, "step": 1}}
    report = _build(values, spec, final=False)
    p = report["pairwise"][0]
    assert (p["conclusion"], p["decided_at_look"]) == ("b_better", 1)
    first = stats.ttest_rel(values["conv128"][:3], values["conv64x2"][:3]).pvalue
    assert p["decision_p"] == pytest.approx(first)
    assert p["decision_p"] < p["level"] == pytest.approx(report["design"]["looks"]["levels"][0])
    now = stats.ttest_rel(values["conv128"], values["conv64x2"]).pvalue
    assert p["p_value"] == pytest.approx(now)
    assert (
        f"decided at look 1 of 4: p = {first:.2g}, below its level {p['level']:.2g}"
        in (report["verdict"])
    )


def test_each_level_gets_its_own_labelled_answer() -> None:
    values = {"a": A, "b": [x - 0.03 for x in B]}
    difference = {
        "a": "a",
        "b": "b",
        "disagreement": 0.0417,
        "disagreement_ci95": [0.035, 0.049],
        "within_a": 0.02,
        "within_b": 0.03,
        "beyond_seeds_p_adjusted": 0.004,
        "differs": True,
        "cka_last_hidden": 0.61,
        "cka_last_hidden_within_a": 0.80,
        "cka_last_hidden_within_b": 0.84,
        "sentence": "a and b disagree.",
    }
    trials = [
        make_trial(n, s, x, val_curve=[]) for n, xs in values.items() for s, x in enumerate(xs)
    ]
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=list(values),
        trials=trials,
        final=True,
        differences=[PairDifference.model_validate(difference)],
    )
    answers = report["answers"]
    assert answers["score"].startswith("a is better than b:")
    assert "disagree" not in answers["score"]
    assert report["verdict"].startswith(answers["score"].rstrip("."))
    assert answers["predictions"].startswith(
        "a and b make different mistakes, more than two seeds of one model do: they disagree "
        "on 4.17% of examples (95% CI 3.50% to 4.90%); two seeds of one model on 2.50%; "
        "adjusted p = 0.004"
    )
    assert answers["representations"] == (
        "a and b represent the data less alike than two seeds of one model: last hidden "
        "layer CKA 0.61, against 0.82 between seeds."
    )
    from core.report.render import render_markdown

    md = render_markdown(report, title="t")
    assert "- **Score:** a is better than b" in md
    assert "- **Predictions:** a and b make different mistakes" in md
