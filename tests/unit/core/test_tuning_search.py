"""The tuning search rebuilt from stored trials: the same trials give the same next ask."""

from __future__ import annotations

import math
from typing import Any

import pytest

from core.tuning.search import Observation, should_prune, suggest
from core.tuning_space import TuningSpec

SPACE: dict[str, Any] = {
    "learning_rate": {"log_uniform": [1e-4, 1e-1]},
    "momentum": {"uniform": [0.0, 0.95]},
    "batch_size": {"choice": [32, 64, 128]},
}


def _spec(**kw: Any) -> TuningSpec:
    return TuningSpec.model_validate({"space": SPACE, "trials": 12, **kw})


def _objective(params: dict[str, Any]) -> float:
    # best near lr = 1e-2: the score falls with the distance in log10
    return 0.95 - 0.1 * abs(math.log10(params["learning_rate"]) + 2.0)


def _run(spec: TuningSpec, n: int, seed: int) -> list[Observation]:
    stored: list[Observation] = []
    for _ in range(n):
        params = suggest(spec, stored, seed=seed)
        stored.append(Observation(params, "complete", _objective(params)))
    return stored


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_the_same_stored_trials_give_the_same_next_configuration(sampler: str) -> None:
    spec = _spec(sampler=sampler)
    first = _run(spec, 12, seed=7)
    again = _run(spec, 12, seed=7)
    assert [o.params for o in first] == [o.params for o in again]
    # a restart in the middle: rebuilt from the first 5 stored trials, it continues the same way
    assert suggest(spec, first[:5], seed=7) == first[5].params
    assert suggest(spec, first[:5], seed=8) != first[5].params


def test_suggestions_stay_in_the_space_and_are_json_plain() -> None:
    for obs in _run(_spec(), 12, seed=1):
        lr, momentum, batch = (obs.params[k] for k in ("learning_rate", "momentum", "batch_size"))
        assert type(lr) is float
        assert 1e-4 <= lr <= 1e-1
        assert type(momentum) is float
        assert 0.0 <= momentum <= 0.95
        assert type(batch) is int
        assert batch in (32, 64, 128)


def test_tpe_finds_the_good_region_better_than_its_first_guesses() -> None:
    stored = _run(_spec(trials=30), 30, seed=3)
    early = max(o.value for o in stored[:10] if o.value is not None)
    late = max(o.value for o in stored if o.value is not None)
    assert late >= early
    assert late > 0.9


def test_the_grid_never_repeats_a_point_even_while_trials_run() -> None:
    spec = TuningSpec.model_validate(
        {
            "space": {"batch_size": {"choice": [16, 32, 64]}, "momentum": {"choice": [0.0, 0.9]}},
            "trials": 6,
            "sampler": "grid",
        }
    )
    stored: list[Observation] = []
    for _ in range(6):
        stored.append(Observation(suggest(spec, stored, seed=0), "running"))
    points = {(o.params["batch_size"], o.params["momentum"]) for o in stored}
    assert len(points) == 6


def test_running_trials_make_parallel_asks_differ() -> None:
    spec = _spec(sampler="tpe")
    stored = _run(spec, 10, seed=5)
    a = suggest(spec, stored, seed=5)
    b = suggest(spec, [*stored, Observation(a, "running")], seed=5)
    assert a != b


def test_median_pruner_stops_a_trial_below_the_median_of_the_others() -> None:
    spec = _spec(pruner="median")
    params = {"learning_rate": 1e-3, "momentum": 0.5, "batch_size": 64}
    others = [
        Observation(params, "complete", 0.9, {0: 0.80, 1: 0.90}),
        Observation(params, "complete", 0.88, {0: 0.78, 1: 0.88}),
        Observation(params, "complete", 0.86, {0: 0.76, 1: 0.86}),
    ]
    assert should_prune(spec, others, params, {0: 0.30}, seed=0)
    assert not should_prune(spec, others, params, {0: 0.85}, seed=0)
    assert not should_prune(_spec(), others, params, {0: 0.30}, seed=0)  # no pruner asked


def test_successive_halving_prunes_on_the_rungs() -> None:
    spec = _spec(pruner="successive_halving")
    params = {"learning_rate": 1e-3, "momentum": 0.5, "batch_size": 64}
    others = [
        Observation(params, "complete", 0.9 - i / 100, {1: 0.8 - i / 100, 2: 0.9 - i / 100})
        for i in range(6)
    ]
    assert should_prune(spec, others, params, {1: 0.10}, seed=0)
    assert not should_prune(spec, others, params, {1: 0.95}, seed=0)
