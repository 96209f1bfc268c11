"""Dodge et al.'s expected best score, against a direct computation over every draw."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable

import pytest

from core.tuning.budget import expected_best, on_edge, still_rising


def _direct(
    scores: list[float], n: int, best: Callable[[Iterable[float]], float] = max
) -> tuple[float, float]:
    """The mean and standard deviation of the best of n draws with replacement, by listing
    all len(scores)**n equally likely ordered draws."""
    bests = [best(draw) for draw in itertools.product(scores, repeat=n)]
    return statistics.fmean(bests), statistics.pstdev(bests)


@pytest.mark.parametrize(
    "scores",
    [
        [0.91],
        [0.5, 0.7],
        [0.80, 0.85, 0.85, 0.90],
        [0.62, 0.91, 0.77, 0.88, 0.70],
        [0.1, 0.4, 0.4, 0.2, 0.9, 0.3],
    ],
)
def test_expected_best_equals_every_draw_listed(scores: list[float]) -> None:
    curve = expected_best(scores)
    assert [p.trials for p in curve] == list(range(1, len(scores) + 1))
    for point in curve:
        mean, std = _direct(scores, point.trials)
        assert point.mean == pytest.approx(mean, abs=1e-12)
        assert point.std == pytest.approx(std, abs=1e-9)


def test_for_a_loss_the_expected_best_is_the_expected_minimum() -> None:
    losses = [0.31, 0.25, 0.40, 0.28]
    for point in expected_best(losses, maximize=False):
        mean, std = _direct(losses, point.trials, min)
        assert point.mean == pytest.approx(mean, abs=1e-12)
        assert point.std == pytest.approx(std, abs=1e-9)


def test_the_curve_rises_to_the_best_and_starts_at_the_mean() -> None:
    scores = [0.6, 0.8, 0.7, 0.9]
    curve = expected_best(scores)
    assert curve[0].mean == pytest.approx(statistics.fmean(scores))
    assert all(b.mean >= a.mean for a, b in itertools.pairwise(curve))
    assert curve[-1].mean < max(scores)  # N draws with replacement may all miss the best


def test_non_finite_scores_are_left_out() -> None:
    assert expected_best([math.nan, 0.5, math.inf]) == expected_best([0.5])
    assert expected_best([]) == []


def test_still_rising_reads_the_last_doubling_against_the_margin() -> None:
    flat = expected_best([0.90, 0.90, 0.90, 0.91])
    steep = expected_best([0.10, 0.20, 0.30, 0.95])
    assert not still_rising(flat, 0.01)
    assert still_rising(steep, 0.01)
    assert not still_rising(steep[:1], 0.01)
    losses = expected_best([2.0, 1.0, 0.2, 3.0], maximize=False)
    assert still_rising(losses, 0.01, maximize=False)


def test_on_edge_uses_the_log_scale_for_log_knobs() -> None:
    assert on_edge(1.1e-4, 1e-4, 1e-1, log=True)
    assert not on_edge(3e-3, 1e-4, 1e-1, log=True)
    assert on_edge(0.099, 1e-4, 1e-1, log=True)
    assert on_edge(0.01, 0.0, 0.5, log=False)
    assert not on_edge(0.25, 0.0, 0.5, log=False)
