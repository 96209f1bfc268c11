"""report.png draws the paired per-seed differences behind each paired claim, and one labelled
answer per level under the panels (core.report.plot_paired).

The drawn figures are read back from the matplotlib figure and recomputed here from the trials
(each shared seed's A - B) and scipy (the paired t-interval), not from the report's fields.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from core.report.build import TrialResult, build_report
from core.report.plot import figure
from core.report.plot_paired import CAPTION_WIDTH, caption_lines, paired_points
from core.spec import DesignSpec
from tests.support.article_report import article_report

Factory = Callable[..., TrialResult]


@pytest.fixture(scope="module")
def article() -> tuple[dict[str, Any], list[TrialResult]]:
    return article_report()


def _by_seed(trials: list[TrialResult], name: str) -> dict[int, float]:
    return {t.seed: float(t.test_accuracy or 0.0) for t in trials if t.variant == name}


def test_paired_points_are_each_seeds_difference_with_the_t_interval(
    article: tuple[dict[str, Any], list[TrialResult]],
) -> None:
    report, trials = article
    points = paired_points(report)
    assert [(p.a, p.b) for p in points] == [("conv128", "conv64x2"), ("conv128", "conv64x3")]
    for p in points:
        a, b = _by_seed(trials, p.a), _by_seed(trials, p.b)
        seeds = sorted(set(a) & set(b))
        d = np.array([a[s] - b[s] for s in seeds])
        assert p.seeds == seeds
        assert p.differences == pytest.approx(list(d))
        assert p.mean == pytest.approx(d.mean())
        lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        assert p.ci95 == pytest.approx([lo, hi])
        assert p.conclusion == "B better"


def test_the_paired_panel_draws_them(article: tuple[dict[str, Any], list[TrialResult]]) -> None:
    report, trials = article
    fig = figure(report, trials, title="article")
    assert len(fig.axes) == 3  # curves, spread, paired
    paired = fig.axes[2]
    assert paired.get_title().startswith("Paired A \u2212 B")
    offsets = [np.asarray(c.get_offsets()) for c in paired.collections]
    dots = [o for o in offsets if o.shape == (5, 2)]
    assert len(dots) == 2
    for drawn, name in zip(dots, ("conv64x2", "conv64x3"), strict=True):
        a, b = _by_seed(trials, "conv128"), _by_seed(trials, name)
        assert sorted(drawn[:, 1]) == pytest.approx(sorted(100 * (a[s] - b[s]) for s in a))
    # The zero line, and the ±1 point margin as a band.
    assert any(np.asarray(line.get_ydata()).tolist() == [0, 0] for line in paired.get_lines())
    lo, hi = paired.get_ylim()
    assert lo < -1.0
    assert hi >= 1.0
    ticks = [t.get_text() for t in paired.get_xticklabels()]
    assert ticks == ["conv128\n\u2212 conv64x2\nB better", "conv128\n\u2212 conv64x3\nB better"]


def test_a_welch_only_report_says_there_is_no_paired_test(trial: Factory) -> None:
    trials = [trial("a", s, 0.9 + 0.01 * s) for s in range(3)]
    trials += [trial("b", s, 0.8 + 0.01 * s) for s in range(3, 6)]  # no seed in common
    report = build_report(
        comparison_id="c",
        primary_metric="test_accuracy",
        variant_order=["a", "b"],
        trials=trials,
        final=True,
        design=DesignSpec(),
    )
    assert report["pairwise"][0]["test"] == "welch"
    assert paired_points(report) == []
    paired = figure(report, trials, title="welch").axes[2]
    assert "No paired test yet" in " ".join(t.get_text() for t in paired.texts)


def test_each_level_is_its_own_labelled_answer(
    article: tuple[dict[str, Any], list[TrialResult]],
) -> None:
    report, trials = article
    answers = report["answers"]
    assert all(answers[k] for k in ("score", "predictions", "representations"))
    fig = figure(report, trials, title="article")
    texts = [t.get_text() for t in fig.texts]
    labels = [t for t in texts if t in ("Score", "Predictions", "Representations")]
    assert labels == ["Score", "Predictions", "Representations"]
    # Every word of each answer is drawn, in order, after its label: nothing cut off.
    body = [t for t in texts if t not in labels and t != "article"]  # less the title
    for key in ("score", "predictions", "representations"):
        wrapped = textwrap.wrap(answers[key], width=CAPTION_WIDTH)
        start = body.index(wrapped[0])
        assert body[start : start + len(wrapped)] == wrapped
    assert len(caption_lines(report)) == len(body)
    # Each answer leads with its conclusion in plain words.
    assert answers["score"].startswith("conv64x2 is better than conv128")
    assert " not shown to make different mistakes " in answers["predictions"]
    assert answers["representations"].startswith("conv128 and conv64x2 represent the data ")


def test_a_report_without_answers_gets_its_verdict(
    article: tuple[dict[str, Any], list[TrialResult]],
) -> None:
    report, _ = article
    bare = {k: v for k, v in report.items() if k != "answers"}
    lines = caption_lines(bare)
    assert lines[0][0] == "Verdict"
    assert " ".join(line for _, line in lines) == " ".join(report["verdict"].split())
