"""The search of one variant's tuning stage, as Optuna's ask-and-tell over stored trials.

Nothing is held in memory between asks: the study is rebuilt from the variant's stored tuning
trials (their configurations, final scores and per-epoch validation scores) every time, and
the sampler is seeded from the comparison's tuning seed and the number of trials already
asked. So the same stored trials always give the same next configuration: a restarted api or
worker continues the same search, and two processes that ask at once ask the same thing (the
row's uniqueness then keeps one). Trials still training are in the study as running, so the
sampler spreads parallel asks (TPE's constant liar), and the grid takes its points in one
shuffled order (trial k, point k), so it never repeats one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
)
from optuna.trial import TrialState

from core.tuning_space import Choice, LogUniform, TuningSpec

__all__ = ["Observation", "distributions", "rebuild", "should_prune", "suggest"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

State = Literal["running", "complete", "pruned", "failed"]

_STATES: dict[str, TrialState] = {
    "running": TrialState.RUNNING,
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
}


@dataclass(frozen=True)
class Observation:
    """One stored tuning trial of the variant: the configuration it was asked to train, its
    state, its final validation score (complete trials) and its score after each epoch."""

    params: Mapping[str, Any]
    state: State
    value: float | None = None
    intermediate: Mapping[int, float] = field(default_factory=dict)


def distributions(spec: TuningSpec) -> dict[str, BaseDistribution]:
    """Optuna's distribution for each knob of the space, in the space's order."""
    out: dict[str, BaseDistribution] = {}
    for name, entry in spec.space.items():
        if isinstance(entry, Choice):
            out[name] = CategoricalDistribution(list(entry.choice))
        elif isinstance(entry, LogUniform):
            out[name] = FloatDistribution(*entry.bounds, log=True)
        else:
            out[name] = FloatDistribution(*entry.bounds)
    return out


def _sampler(spec: TuningSpec, seed: int, asked: int) -> optuna.samplers.BaseSampler:
    """The spec's sampler. A grid keeps one seed for the whole search (it shuffles its points
    once, and trial k takes point k); the others are seeded from the base seed and the number
    of trials asked before, so each ask is a function of the stored trials alone."""
    if spec.sampler == "grid":
        grid = {n: list(e.choice) for n, e in spec.space.items() if isinstance(e, Choice)}
        return optuna.samplers.GridSampler(grid, seed=_seed(seed, 0))
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=_seed(seed, asked))
    return optuna.samplers.TPESampler(seed=_seed(seed, asked), constant_liar=True)


def _seed(base: int, asked: int) -> int:
    digest = hashlib.sha256(f"archbench-tuning:{base}:{asked}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def rebuild(spec: TuningSpec, observations: Sequence[Observation], *, seed: int) -> optuna.Study:
    """An in-memory study holding ``observations`` in order (``Study.add_trial``), its sampler
    seeded as ``_sampler`` says; ask it for the next configuration."""
    study = _study(spec, _sampler(spec, seed, len(observations)))
    dists = distributions(spec)
    for obs in observations:
        complete = obs.state == "complete" and obs.value is not None and math.isfinite(obs.value)
        state = TrialState.COMPLETE if complete else _STATES[obs.state]
        if state == TrialState.COMPLETE and not complete:
            state = TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=float(obs.value) if complete and obs.value is not None else None,
                params=dict(obs.params),
                distributions={n: dists[n] for n in obs.params if n in dists},
                intermediate_values={
                    int(k): float(v) for k, v in obs.intermediate.items() if math.isfinite(v)
                },
            )
        )
    return study


def _study(spec: TuningSpec, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.create_study(
        direction="maximize" if spec.maximize else "minimize",
        sampler=sampler,
        pruner=_pruner(spec),
    )


def _replayed(spec: TuningSpec, observations: Sequence[Observation]) -> optuna.Study:
    """A study that has seen ``observations`` through Optuna's own ask-and-tell: each stored
    trial enqueued with its configuration, asked, its per-epoch scores reported with the
    pruner asked after each (so successive halving's rungs are recorded as they were live),
    and told its outcome. Slower than ``rebuild``; only a pruner with bookkeeping needs it."""
    study = _study(spec, optuna.samplers.RandomSampler(seed=0))
    dists = distributions(spec)
    for obs in observations:
        study.enqueue_trial(dict(obs.params), skip_if_exists=False)
        trial = study.ask(dists)
        for step, score in sorted(obs.intermediate.items()):
            if math.isfinite(score):
                trial.report(float(score), int(step))
                trial.should_prune()
        if obs.state == "running":
            continue
        if obs.state == "complete" and obs.value is not None and math.isfinite(obs.value):
            study.tell(trial, float(obs.value))
        else:
            study.tell(trial, state=TrialState.PRUNED if obs.state == "pruned" else TrialState.FAIL)
    return study


def suggest(spec: TuningSpec, observations: Sequence[Observation], *, seed: int) -> dict[str, Any]:
    """The next configuration to train, given the variant's stored tuning trials."""
    study = rebuild(spec, observations, seed=seed)
    trial = study.ask(distributions(spec))
    return {name: _plain(trial.params[name]) for name in spec.space}


def _plain(value: Any) -> Any:
    """JSON-plain numbers (numpy scalars from a sampler become int or float)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value.item() if hasattr(value, "item") else value


def _pruner(spec: TuningSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def should_prune(
    spec: TuningSpec,
    others: Sequence[Observation],
    params: Mapping[str, Any],
    scores: Mapping[int, float],
    *,
    seed: int,
) -> bool:
    """Whether the running trial with ``params`` and per-epoch validation ``scores`` (epoch
    number to score) should stop now, by the spec's pruner against the variant's other tuning
    trials. False without a pruner or before any epoch."""
    if spec.pruner is None or not scores:
        return False
    if spec.pruner == "successive_halving":
        study = _replayed(spec, others)
    else:
        study = rebuild(spec, others, seed=seed)
    study.enqueue_trial(dict(params), skip_if_exists=False)
    trial = study.ask(distributions(spec))
    prune = False
    for step, score in sorted(scores.items()):
        trial.report(float(score), int(step))
        prune = trial.should_prune()
    return bool(prune)
