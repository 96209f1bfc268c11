"""The report's error rates, by simulation over the report code itself (no training).

Each simulated comparison has three variants whose per-seed values are drawn from normal
distributions (SD 1, so differences and margins are in standard deviations). A fixed
design builds one report over its list of seeds; an adaptive design
(``seeds: {min: 3, max: 20, step}``) builds the report look by look, exactly as the
service does: ``build_report`` over the trials so far, ``needs_more_seeds``, then one more
round of seeds. Every report a user could read counts: the interim ones at each look, an
interim one while a round is still running, and the final one.

The claims checked:

- under the null (all means equal), the family-wise rate of any "better" conclusion at any
  look, over at least 2,000 comparisons, has a 95% binomial interval that includes or lies
  below alpha = 5%;
- true differences of 2 SD are decided ``better`` in at least 80% of pairs by ``max`` seeds;
- with a margin of 3 SD, null comparisons end ``equivalent`` in most runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from core.report.build import TrialResult, build_report, needs_more_seeds
from core.spec import DesignSpec

NAMES = ("a", "b", "c")
BETTER = ("a_better", "b_better")

pytestmark = pytest.mark.slow


def _trial(variant: str, seed: int, value: float | None, status: str = "succeeded") -> TrialResult:
    return TrialResult(
        variant=variant,
        seed=seed,
        status=status,
        params=None,
        flops=None,
        test_accuracy=value,
        test_loss=None,
        best_val_accuracy=None,
        train_seconds=None,
        epochs_done=1,
        epochs_planned=1,
        stop_reason=None,
        inference_ms_per_sample=None,
        curve=(),
    )


def _report(
    values: Mapping[str, Sequence[float]], spec: Mapping[str, Any], *, final: bool, running: int
) -> dict[str, Any]:
    trials = [_trial(v, s, x) for v in NAMES for s, x in enumerate(values[v])]
    n = len(values[NAMES[0]])
    trials += [_trial(v, n + k, None, "running") for v in NAMES for k in range(running)]
    return build_report(
        comparison_id="sim",
        primary_metric="test_accuracy",
        variant_order=NAMES,
        trials=trials,
        final=final,
        design=DesignSpec.model_validate(spec),
    )


@dataclass
class Run:
    reports: list[dict[str, Any]]
    looks: int

    @property
    def final(self) -> dict[str, Any]:
        return self.reports[-1]

    def claimed_better(self) -> bool:
        return any(p["conclusion"] in BETTER for r in self.reports for p in r["pairwise"])


def simulate(
    rng: np.random.Generator,
    means: Sequence[float],
    spec: Mapping[str, Any],
    *,
    peek_mid_round: bool = False,
) -> Run:
    """One comparison, look by look; seed s of every variant is drawn once and kept."""
    seeds = spec["seeds"]
    adaptive = isinstance(seeds, Mapping)
    n = int(seeds["min"]) if adaptive else len(seeds)
    values: dict[str, list[float]] = {v: [] for v in NAMES}
    reports: list[dict[str, Any]] = []
    looks = 0
    while True:
        if peek_mid_round and looks:
            # A round still running: the values so far plus one running trial a variant.
            reports.append(_report(values, spec, final=False, running=1))
        for v, mean in zip(NAMES, means, strict=True):
            values[v] += list(mean + rng.standard_normal(n - len(values[v])))
        if peek_mid_round and not adaptive:
            # The list of seeds with its last seed still running.
            partial = {v: values[v][:-1] for v in NAMES}
            reports.append(_report(partial, spec, final=False, running=1))
        looks += 1
        # The report at a look's end: interim, unless no more seeds will come, where the
        # service's final report says the same (``final`` changes words, not conclusions).
        report = _report(values, spec, final=not adaptive, running=0)
        reports.append(report)
        if not adaptive or not needs_more_seeds(report):
            break
        n = min(int(seeds["max"]), n + int(seeds["step"]))
    return Run(reports, looks)


def _binomial_ci(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95)
    return ci.low, ci.high


def test_null_family_wise_error_over_fixed_and_adaptive_designs() -> None:
    rng = np.random.default_rng(20261203)
    runs: list[Run] = []
    # 1,200 fixed designs, 3 to 20 seeds, all pairs; every fifth also peeks while running.
    for i in range(1_200):
        n = int(rng.integers(3, 21))
        spec = {"seeds": list(range(n)), "equivalence_margin": 0.01}
        runs.append(simulate(rng, (0.0, 0.0, 0.0), spec, peek_mid_round=i % 5 == 0))
    # 800 adaptive designs from 3 to 20 seeds: steps 1 to 4; a tiny margin (they run to
    # max, the most looks) or a 3 SD margin (they stop once all pairs are equivalent);
    # half with a baseline family.
    for i in range(800):
        spec = {
            "seeds": {"min": 3, "max": 20, "step": int(rng.integers(1, 5))},
            "equivalence_margin": 3.0 if i % 2 else 0.01,
            "baseline": "a" if i % 4 < 2 else None,
        }
        runs.append(simulate(rng, (0.0, 0.0, 0.0), spec, peek_mid_round=i % 10 == 0))
    errors = sum(r.claimed_better() for r in runs)
    low, high = _binomial_ci(errors, len(runs))
    assert len(runs) >= 2_000
    assert low <= 0.05, f"family-wise error {errors}/{len(runs)}, 95% CI {low:.4f}-{high:.4f}"
    adaptive = runs[1_200:]
    assert sum(r.looks > 1 for r in adaptive) > 400  # the looks really happened
    print(f"family-wise error {errors}/{len(runs)} (95% CI {low:.4f} to {high:.4f})")
    # Mid-round reports (trials still running) conclude nothing new: only a pair decided at
    # an earlier, completed look keeps its decision.
    for r in runs:
        for report in r.reports:
            looks = report["design"]["looks"]
            if not looks["complete"]:
                for p in report["pairwise"]:
                    if p["conclusion"] not in ("inconclusive", "untested"):
                        assert p["decided_at_look"] < looks["current"]
                assert report["interim"] is True


def test_two_sd_differences_are_decided_better_by_max_seeds() -> None:
    rng = np.random.default_rng(7)
    decided = total = 0
    for i in range(150):
        spec = {
            "seeds": {"min": 3, "max": 20, "step": 1},
            "baseline": "a",
            "equivalence_margin": 0.01,
        }
        run = simulate(rng, (0.0, 2.0, 2.0) if i % 2 else (2.0, 0.0, 0.0), spec)
        for p in run.final["pairwise"]:
            total += 1
            want = "b_better" if i % 2 else "a_better"
            decided += p["conclusion"] == want
    print(f"2 SD decided better in {decided}/{total} pairs")
    assert decided / total >= 0.8, f"{decided}/{total} decided"


def test_null_with_a_three_sd_margin_ends_equivalent_in_most_runs() -> None:
    rng = np.random.default_rng(11)
    runs = [
        simulate(
            rng,
            (0.0, 0.0, 0.0),
            {"seeds": {"min": 3, "max": 20, "step": 1}, "equivalence_margin": 3.0},
        )
        for _ in range(150)
    ]
    equivalent = sum(
        all(p["conclusion"] == "equivalent" for p in r.final["pairwise"]) for r in runs
    )
    print(f"3 SD margin: {equivalent}/{len(runs)} null runs ended equivalent")
    assert equivalent / len(runs) > 0.5
    # Decided runs stopped before max: adding seeds ends when every pair is decided.
    assert np.mean([r.looks for r in runs]) < 18
