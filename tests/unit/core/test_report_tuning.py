"""The report's tuning section, every figure recomputed here another way: the selected
configuration by a plain scan, the budget curve over every draw of n trials listed, the edge
notes from the space's bounds, and the still-rising note from the curve's last doubling."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Any

import pytest

from core.report.build import build_report
from core.report.render import md_escape, render_markdown
from core.report.schema import Report, Tuning
from core.report.tuning import tuning_markdown, tuning_section
from core.tuning.search import Observation
from core.tuning_space import TuningSpec
from tests.support.trials import make_trial

SPACE: dict[str, Any] = {
    "learning_rate": {"log_uniform": [1e-4, 1e-1]},
    "momentum": {"uniform": [0.0, 0.9]},
    "batch_size": {"choice": [32, 64, 128]},
}


def _spec(**over: Any) -> TuningSpec:
    return TuningSpec.model_validate({"space": SPACE, "trials": 4, "sampler": "tpe", **over})


def _obs(value: float | None, lr: float = 1e-2, m: float = 0.45, bs: int = 64, **kw: Any) -> Any:
    state = kw.pop("state", "complete" if value is not None else "running")
    return Observation(
        {"learning_rate": lr, "momentum": m, "batch_size": bs}, state, value, kw.get("per", {})
    )


def _direct(scores: Sequence[float], n: int, maximize: bool = True) -> tuple[float, float]:
    """Mean and SD of the best of n draws with replacement, over every ordered draw listed."""
    best = max if maximize else min
    bests = [best(d) for d in itertools.product(scores, repeat=n)]
    return statistics.fmean(bests), statistics.pstdev(bests)


def _section(spec: TuningSpec, obs: dict[str, list[Any]], margin: float = 0.01) -> dict[str, Any]:
    section = tuning_section(spec, obs, order=list(obs), margin=margin)
    Tuning.model_validate(section)  # the JSON is the typed model's
    return section


def test_selection_and_budget_curve_are_recomputed_from_the_trials() -> None:
    a = [0.80, 0.91, 0.85, 0.91]
    b = [0.70, 0.72, 0.95]
    obs = {
        "a": [_obs(v, lr=10 ** (-3 + 0.1 * i)) for i, v in enumerate(a)],
        "b": [*(_obs(v, lr=10 ** (-2.5 + 0.1 * i)) for i, v in enumerate(b)), _obs(None)],
    }
    section = _section(_spec(), obs, margin=0.5)
    va, vb = section["variants"]
    # The first of the two best (0.91) is selected, with its own configuration.
    assert va["selected"] == dict(obs["a"][1].params)
    assert va["validation_score"] == 0.91
    assert vb["selected"] == dict(obs["b"][2].params)
    assert (vb["trials"], vb["running"]) == (3, 1)
    for v, scores in ((va, a), (vb, b)):
        assert [p["trials"] for p in v["expected_best"]] == list(range(1, len(scores) + 1))
        for point in v["expected_best"]:
            mean, std = _direct(scores, point["trials"])
            assert point["mean"] == pytest.approx(mean, abs=1e-12)
            assert point["std"] == pytest.approx(std, abs=1e-9)
    assert section["trials_per_variant"] == 4
    assert "never evaluated on the test split" in section["selection"]


def test_for_a_loss_the_least_is_selected_and_the_curve_falls() -> None:
    losses = [0.40, 0.31, 0.35]
    spec = _spec(metric="val_loss")
    section = _section(
        spec, {"a": [_obs(v, lr=10 ** (-3 + 0.2 * i)) for i, v in enumerate(losses)]}
    )
    (v,) = section["variants"]
    assert v["validation_score"] == 0.31
    for point in v["expected_best"]:
        assert point["mean"] == pytest.approx(_direct(losses, point["trials"], False)[0])
    assert v["expected_best"][-1]["mean"] < v["expected_best"][0]["mean"]


def test_pruned_failed_and_non_finite_trials_are_counted_but_not_scored() -> None:
    obs = {
        "a": [
            _obs(0.8),
            _obs(None, state="pruned"),
            _obs(None, state="failed"),
            _obs(math.nan, state="complete"),
        ]
    }
    (v,) = _section(_spec(), obs)["variants"]
    assert (v["trials"], v["pruned"], v["failed"], v["running"]) == (1, 1, 2, 0)
    assert len(v["expected_best"]) == 1


def _edges(params: dict[str, Any]) -> list[tuple[str, str]]:
    obs = {"a": [Observation(params, "complete", 0.9)]}
    (v,) = _section(_spec(), obs)["variants"]
    assert [e["text"] for e in v["on_edge"]] == [n for n in v["notes"] if "end of" in n]
    return [(e["knob"], e["edge"]) for e in v["on_edge"]]


def test_edge_notes_follow_the_bounds_of_each_range() -> None:
    # log-uniform [1e-4, 1e-1]: 3 decades, 5% of them is 0.15 decade.
    top = 10 ** (-1 - 0.14)
    inside = 10 ** (-1 - 0.16)
    assert _edges({"learning_rate": top, "momentum": 0.45, "batch_size": 64}) == [
        ("learning_rate", "high")
    ]
    assert _edges({"learning_rate": inside, "momentum": 0.45, "batch_size": 64}) == []
    assert _edges({"learning_rate": 1.05e-4, "momentum": 0.45, "batch_size": 64}) == [
        ("learning_rate", "low")
    ]
    # uniform [0, 0.9]: 5% is 0.045 on the natural scale.
    assert _edges({"learning_rate": 1e-2, "momentum": 0.044, "batch_size": 64}) == [
        ("momentum", "low")
    ]
    assert _edges({"learning_rate": 1e-2, "momentum": 0.046, "batch_size": 64}) == []
    # an ordered choice of three numbers: either end is an edge, the middle is not.
    assert _edges({"learning_rate": 1e-2, "momentum": 0.45, "batch_size": 128}) == [
        ("batch_size", "high")
    ]
    assert _edges({"learning_rate": 1e-2, "momentum": 0.45, "batch_size": 32}) == [
        ("batch_size", "low")
    ]


def test_an_edge_note_says_the_space_was_too_narrow() -> None:
    obs = {"conv": [Observation({"learning_rate": 0.095, "momentum": 0.45}, "complete", 0.9)]}
    (v,) = _section(_spec(), obs)["variants"]
    assert v["notes"] == [
        "conv: the selected learning_rate (0.095) lies at the high end of the log-uniform "
        "range [0.0001, 0.1]: the space was too narrow, the best may lie beyond it; widen it "
        "there."
    ]


def test_a_choice_of_two_or_of_words_has_no_edge() -> None:
    spec = TuningSpec.model_validate(
        {"space": {"batch_size": {"choice": [32, 64]}, "weight_decay": {"uniform": [0, 0.1]}}}
    )
    obs = {"a": [Observation({"batch_size": 64, "weight_decay": 0.05}, "complete", 0.9)]}
    assert tuning_section(spec, obs, order=["a"], margin=0.01)["variants"][0]["on_edge"] == []


def _rising_gain(scores: Sequence[float]) -> float:
    n = len(scores)
    return _direct(scores, n)[0] - _direct(scores, max(1, n // 2))[0]


def test_the_still_rising_note_reads_the_last_doubling_against_the_margin() -> None:
    rising = [0.50, 0.60, 0.70, 0.95]  # a late lucky trial: the curve still climbs
    flat = [0.90, 0.905, 0.91, 0.905]
    gain = _rising_gain(rising)
    assert gain > 0.01 > _rising_gain(flat)
    obs = {
        "deep": [_obs(v, lr=10 ** (-3 + 0.2 * i)) for i, v in enumerate(rising)],
        "shallow": [_obs(v, lr=10 ** (-3 + 0.2 * i)) for i, v in enumerate(flat)],
    }
    section = _section(_spec(), obs, margin=0.01)
    deep, shallow = section["variants"]
    assert (deep["still_rising"], shallow["still_rising"]) == (True, False)
    (note,) = deep["notes"]
    assert note == (
        f"deep: the expected best validation accuracy was still rising at the budget (it "
        f"gained {100 * gain:.2f} points from 2 to 4 trials, more than the equivalence margin "
        "of 1.00): the budget was not enough to call the comparison fair; give more tuning "
        "trials."
    )
    assert shallow["notes"] == []
    # The same gain is not "rising" against a wider margin.
    assert not _section(_spec(), obs, margin=gain + 1e-9)["variants"][0]["still_rising"]
    assert section["verdict"] == (
        "The comparison was made at tuned settings with equal budgets of 4 tuning trials per "
        "variant (tpe sampler), each variant at the configuration with the best validation "
        "accuracy; the budget was not enough for deep (still rising)."
    )


def test_the_verdict_says_when_tuning_runs_or_completed_fewer() -> None:
    obs = {
        "a": [_obs(0.9), _obs(0.8), _obs(None, state="pruned"), _obs(0.85)],
        "b": [_obs(0.9), _obs(None)],
    }
    section = _section(_spec(sampler="random"), obs, margin=1.0)
    assert section["verdict"] == (
        "The comparison was made at tuned settings with equal budgets of 4 tuning trials per "
        "variant (random sampler), each variant at the configuration with the best validation "
        "accuracy; tuning is still running for b; fewer trials completed for some (a 3 of 4: "
        "pruned or failed)."
    )


def _report_with(section: dict[str, Any]) -> dict[str, Any]:
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["a", "b"],
        trials=[make_trial(v, s, 0.9 + 0.01 * s) for v in "ab" for s in range(3)],
        final=True,
    )
    report["tuning"] = section
    return report


def test_the_section_fits_the_report_schema_and_renders_as_markdown() -> None:
    obs = {
        "a": [_obs(0.9, lr=0.095), _obs(0.8)],
        "b": [_obs(0.7, bs=128), _obs(0.75, lr=1e-3)],
    }
    section = _section(_spec(), obs)
    report = _report_with(section)
    Report.model_validate(report)
    md = render_markdown(report, title="tuned")
    lines = tuning_markdown(section)
    assert "\n".join(lines) in md
    assert lines[0] == "## Tuning"
    assert "| a | learning\\_rate=0.095, momentum=0.45, batch\\_size=64 | 90.00% | 2 of 4 |" in md
    assert "| b | learning\\_rate=0.001, momentum=0.45, batch\\_size=64 | 75.00% | 2 of 4 |" in md
    assert md.index("## Tuning") < md.index("## Notes")
    assert tuning_markdown(None) == []
    # A tuning note in the report's notes (as load_report adds them) is shown once, under
    # Tuning.
    assert section["notes"]
    report["notes"] = [*report["notes"], *section["notes"]]
    md = render_markdown(report, title="tuned")
    for note in section["notes"]:
        assert md.count(md_escape(note)) == 1
        assert md.index(md_escape(note)) < md.index("## Notes")
