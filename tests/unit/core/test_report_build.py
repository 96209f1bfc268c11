"""build_report on crafted trials: aggregates, pairs, ranking, verdict and notes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.report import REPORT_ROW_COLUMNS, TrialResult, build_report, report_rows
from core.report_render import render_markdown, render_text

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
        expected = stats.ttest_ind(a, b, equal_var=False)
        assert p["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
        assert p["diff"] == pytest.approx(np.mean(a) - np.mean(b))
        assert (p["n_a"], p["n_b"]) == (3, 3)
        raw.append(expected.pvalue)
    order = np.argsort(raw)
    m = len(raw)
    holm = np.maximum.accumulate([min(1.0, (m - k) * raw[i]) for k, i in enumerate(order)])
    for k, i in enumerate(order):
        assert report["pairwise"][i]["p_adjusted"] == pytest.approx(holm[k])
    assert [p["significant"] for p in report["pairwise"]] == [True, True, False]


def test_clear_winner_verdict_names_winner_loser_and_adjusted_p(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "conv128", [0.941, 0.945, 0.938]),
        *_seeds(trial, "conv64x3", [0.977, 0.975, 0.979]),
    ]
    report = _build(trials, order=["conv128", "conv64x3"])
    verdict = report["verdict"]
    assert verdict.startswith("conv64x3 beats conv128 by 3.6 points of test accuracy (95% CI ")
    assert "adjusted p" in verdict
    assert verdict.endswith(".")
    assert re.search(r"[.;]\s+[A-Z]", verdict) is None  # one sentence
    assert report["ranking"] == ["conv64x3", "conv128"]


def test_verdict_with_winner_and_tie(article: list[TrialResult]) -> None:
    verdict = _build(article)["verdict"]
    assert verdict.startswith("conv64x3 beats conv128 by ")
    assert "conv64x3 and conv64x2 are not distinguishable with 3 seeds" in verdict


def test_everything_indistinguishable(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.90, 0.95, 0.92]), *_seeds(trial, "b", [0.91, 0.94, 0.93])]
    report = _build(trials, order=["a", "b"])
    assert not any(p["significant"] for p in report["pairwise"])
    assert report["verdict"].startswith("b and a are not distinguishable with 3 seeds: b leads a")
    assert any("smaller than the seed-to-seed spread" in n for n in report["notes"])


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
    assert "too few seeds (1) for a significance test;" in report["verdict"]
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
    assert pair["significant"] is False
    assert (
        "a leads b by 9.5 points of test accuracy, but there are too few seeds (2)"
        in report["verdict"]
    )
    notes = report["notes"]
    assert any("only 2 finished seeds" in n and "no significance test" in n for n in notes)


def test_a_variant_with_too_few_seeds_is_left_out_of_the_tests(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.941, 0.945, 0.938]),
        *_seeds(trial, "b", [0.977, 0.975, 0.979]),
        *_seeds(trial, "c", [0.990, 0.991]),
    ]
    report = _build(trials, order=["a", "b", "c"])
    pairs = {(p["a"], p["b"]): p for p in report["pairwise"]}
    assert pairs[("a", "b")]["significant"] is True
    # Only the one testable pair is in the Holm family: adjusted equals raw.
    assert pairs[("a", "b")]["p_adjusted"] == pytest.approx(pairs[("a", "b")]["p_value"])
    for key in (("a", "c"), ("b", "c")):
        assert pairs[key]["p_value"] is None
        assert pairs[key]["significant"] is False
    assert report["ranking"] == ["c", "b", "a"]
    verdict = report["verdict"]
    assert verdict.startswith("b beats a by 3.6 points of test accuracy (95% CI ")
    assert verdict.endswith(
        "; c (99.0% test accuracy over 2 seeds) is not tested, with fewer than 3 seeds."
    )


def test_identical_results_are_not_significant(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.9] * 3), *_seeds(trial, "b", [0.9] * 3)]
    report = _build(trials, order=["a", "b"])
    pair = report["pairwise"][0]
    assert pair["diff"] == 0.0
    assert (pair["p_value"], pair["ci95"], pair["effect_size"]) == (None, None, None)
    assert pair["significant"] is False
    assert _variant(report, "a")["std"] == 0.0
    assert "not distinguishable" in report["verdict"]
    json.dumps(report, allow_nan=False)


def test_identical_single_seeds_say_tie_not_lead(trial: Factory) -> None:
    report = _build([trial("a", 0, 0.9), trial("b", 0, 0.9)], order=["a", "b"])
    assert report["verdict"].startswith("a and b both reach 90.0% test accuracy, but there are")


def test_different_constants_get_no_test_and_a_note(trial: Factory) -> None:
    trials = [*_seeds(trial, "a", [0.9] * 3), *_seeds(trial, "b", [0.8] * 3)]
    report = _build(trials, order=["a", "b"])
    pair = report["pairwise"][0]
    assert pair["p_value"] is None
    assert pair["significant"] is False
    assert any("with no spread no t-test is possible" in n for n in report["notes"])
    assert report["verdict"] == (
        "a leads b by 10.0 points of test accuracy on every one of 3 seeds "
        "(no spread across seeds, so no test)."
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
    info = {"b": {"params": 1500, "flops": 5000}}
    report = _build(trials, order=["a", "b"], variant_info=info)
    b = _variant(report, "b")
    assert (b["params"], b["flops"], b["n"], b["mean"], b["rank"]) == (1500, 5000, 0, None, None)
    assert b["analysis"] == {"params": 1500, "flops": 5000}
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
        *_seeds(trial, "b", [0.80, 0.81, 0.82]),
        trial("b", 3, None, status="running"),
    ]
    report = _build(trials, order=["a", "b"], final=False)
    assert report["final"] is False
    assert report["verdict"].startswith("Partial result (6 of 7 trials finished): a beats b by ")
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
        "a reaches 91.0% test accuracy (95% CI 88.5% to 93.5%, 3 seeds); "
        "there is no other variant to compare it with."
    )


def test_lower_is_better_ranking_with_test_loss(trial: Factory) -> None:
    trials = [
        *_seeds(trial, "a", [0.9, 0.9, 0.9], test_loss=0.30),
        *[trial("b", s, 0.9, test_loss=x) for s, x in enumerate([0.10, 0.12, 0.11])],
        *[trial("c", s, 0.9, test_loss=x) for s, x in enumerate([0.20, 0.22, 0.21])],
    ]
    report = _build(trials, order=["a", "b", "c"], metric="test_loss")
    assert report["higher_is_better"] is False
    assert report["ranking"] == ["b", "c", "a"]
    assert _variant(report, "b")["mean"] == pytest.approx(0.11)
    assert report["verdict"].startswith("b beats c by 0.1 in test loss (95% CI ")
    assert "and a by 0.19 (95% CI" in report["verdict"]
    assert "; c beats a by 0.09 (95% CI" in report["verdict"]


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
    for p in report["pairwise"]:
        assert p["significant"] == (p["p_adjusted"] is not None and p["p_adjusted"] < 0.05)
    assert "a" in render_text(report)
    assert "| a |" in render_markdown(report, title="any")
