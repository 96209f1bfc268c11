"""The adaptive design's error rates, power, stickiness and intervals, by simulation over the
report code.

Per-seed values are ``mean + u_s + e`` with a per-seed effect ``u_s`` shared by every
variant (a seed fixes split and data order for all of them) and the variant's own noise
``e`` (SD 1, so gaps are in SDs of ``e``). The decisions come from
``core.report.looks.decide`` (what ``build_report`` calls): a look decides on the first
``n_k`` seeds only, so deciding once over all ``max`` seeds replays exactly the sequence of
reports the service would produce, and a pair decided at a look stays decided; the
stickiness, interval and end-to-end checks call ``build_report`` itself look by look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import stats

from core.report.build import TrialResult, build_report, needs_more_seeds
from core.report.looks import Decision, decide, look_of
from core.report.pairs import tested_pairs as family_of  # not test_*: pytest collects it
from core.spec import DesignSpec
from tests.support.trials import make_trial

BETTER = ("a_better", "b_better")


@dataclass
class _Sample:
    name: str
    values: list[float]
    seeds: list[int]


def _draw(rng: np.random.Generator, means: Sequence[float], n: int) -> list[_Sample]:
    shared = rng.standard_normal(n)
    return [
        _Sample(f"v{i}", list(m + shared + rng.standard_normal(n)), list(range(n)))
        for i, m in enumerate(means)
    ]


def _decisions(
    rng: np.random.Generator, means: Sequence[float], boundary: str | None, n_max: int = 20
) -> tuple[list[Decision], list[tuple[str, str]]]:
    groups = _draw(rng, means, n_max)
    by = {g.name: g for g in groups}
    family = family_of([g.name for g in groups], None)
    schedule = None if boundary is None else [*range(3, n_max), n_max]
    look = look_of(schedule, n_max, boundary or "pocock", True)
    return decide([(by[a], by[b]) for a, b in family], look, 1e-9), family


def _rate(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.95)
    return ci.low, ci.high


@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["pocock", "obrien_fleming"])
def test_one_pair_family_wise_error_is_within_four_to_five_percent(boundary: str) -> None:
    rng = np.random.default_rng(11)
    runs = 3_000
    errors = sum(
        any(d.kind == "better" for d in _decisions(rng, (0.0, 0.0), boundary)[0])
        for _ in range(runs)
    )
    low, high = _rate(errors, runs)
    print(f"{boundary}: family-wise error {errors}/{runs} ({low:.4f} to {high:.4f})")
    assert 0.04 <= errors / runs <= 0.0525
    assert low <= 0.05
    assert high >= 0.04


@pytest.mark.slow
def test_power_at_one_and_two_sd_is_within_ten_points_of_the_fixed_design() -> None:
    """Three variants, all pairs (Holm), one 1 SD (or 2 SD) better: the chance that some pair
    is shown better, by the default O'Brien-Fleming design up to 20 seeds and by a fixed
    design of 20 seeds; the null family-wise error of both stays under 5%."""
    for gap, runs in ((1.0, 800), (2.0, 300)):
        found = {}
        for boundary in (None, "obrien_fleming"):
            rng = np.random.default_rng(3)
            found[boundary] = np.mean(
                [
                    any(d.kind == "better" for d in _decisions(rng, (0, 0, gap), boundary)[0])
                    for _ in range(runs)
                ]
            )
        print(f"{gap} SD: fixed {found[None]:.3f}, sequential {found['obrien_fleming']:.3f}")
        assert found["obrien_fleming"] >= found[None] - 0.10
    rng = np.random.default_rng(4)
    null = [
        any(d.kind == "better" for d in _decisions(rng, (0, 0, 0), "obrien_fleming")[0])
        for _ in range(1_500)
    ]
    assert _rate(sum(null), len(null))[0] <= 0.05


def _trials(groups: Sequence[_Sample], n: int, running: int = 0) -> list[TrialResult]:
    out = [make_trial(g.name, s, g.values[s], val_curve=[]) for g in groups for s in range(n)]
    out += [
        make_trial(g.name, n + k, None, status="running", val_curve=[])
        for g in groups
        for k in range(running)
    ]
    return out


def _run(groups: Sequence[_Sample], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's sequence of reports: each look at its end, and mid-round while the
    next look's trials run."""
    design = DesignSpec.model_validate(spec)
    names = [g.name for g in groups]
    n, reports = spec["seeds"]["min"], []
    while True:
        report = build_report(
            comparison_id="s",
            primary_metric="test_accuracy",
            variant_order=names,
            trials=_trials(groups, n),
            final=False,
            design=design,
        )
        reports.append(report)
        if not needs_more_seeds(report):
            return reports
        reports.append(
            build_report(
                comparison_id="s",
                primary_metric="test_accuracy",
                variant_order=names,
                trials=_trials(groups, n, running=1),
                final=False,
                design=design,
            )
        )
        n = min(spec["seeds"]["max"], n + spec["seeds"]["step"])


def test_a_pair_decided_at_a_look_is_never_reported_undecided_later() -> None:
    """A 1.5 SD gap among three variants under Pocock's boundary (early decisions): every
    report after a pair's decision, the mid-round ones included, keeps it, and says at
    which look it was taken."""
    rng = np.random.default_rng(8)
    spec = {"seeds": {"min": 3, "max": 12, "step": 3, "boundary": "pocock"}}
    decided_early = 0
    for _ in range(6):
        groups = _draw(rng, (0.0, 0.0, 1.5), 12)
        reports = _run(groups, spec)
        first: dict[tuple[str, str], tuple[str, int]] = {}
        for report in reports:
            for p in report["pairwise"]:
                key = (p["a"], p["b"])
                if key in first:
                    assert (p["conclusion"], p["decided_at_look"]) == first[key]
                elif p["conclusion"] in (*BETTER, "equivalent"):
                    first[key] = (p["conclusion"], p["decided_at_look"])
                    decided_early += report is not reports[-1]
    assert decided_early > 0  # some decisions came before the last report


@pytest.mark.slow
def test_repeated_intervals_cover_after_a_sequential_stop() -> None:
    """Two variants 1 SD apart, O'Brien-Fleming up to 12 seeds: the report at the stop (the
    first look where the pair is decided, or the last) carries intervals for the
    difference (true 1) and for g_z (true 1 / sqrt(2)) that cover at 94% or more."""
    rng = np.random.default_rng(21)
    schedule = [3, 6, 9, 12]
    design = DesignSpec.model_validate({"seeds": {"min": 3, "max": 12, "step": 3}})
    covered_diff = covered_g = runs = 0
    for _ in range(600):
        groups = _draw(rng, (1.0, 0.0), 12)
        by = {g.name: g for g in groups}
        look = look_of(schedule, 12, "obrien_fleming", True)
        decision = decide([(by["v0"], by["v1"])], look, 1e-9)[0]
        stop = schedule[decision.look if decision.look is not None else -1]
        report = build_report(
            comparison_id="s",
            primary_metric="test_accuracy",
            variant_order=["v0", "v1"],
            trials=_trials(groups, stop),
            final=True,
            design=design,
        )
        p = report["pairwise"][0]
        runs += 1
        covered_diff += p["ci95"][0] <= 1.0 <= p["ci95"][1]
        g = p["effect_size_ci95"]
        covered_g += g[0] <= 1 / np.sqrt(2) <= g[1]
    print(f"coverage: difference {covered_diff / runs:.3f}, g_z {covered_g / runs:.3f}")
    assert covered_diff / runs >= 0.94
    assert covered_g / runs >= 0.94
