"""The tuning stage of a comparison with ``tuning``: its trials, its search, its selection.

Seeds. Tuning trial k (0-based) of every variant trains seed ``MAX_SEED - k``, counted down
past any seed the comparison's own design may use (its list, or 0..max-1 of a schedule), so
the tuning trials never share a seed with the tested ones, and trial k of each variant shares
its seed (and, under the per-seed design, its split) with trial k of every other variant.

Search. Every variant asks ``core.tuning.search.suggest`` with the same base seed (the
dataset's ``split_seed``), rebuilt from its own stored tuning trials in ask order, so the
same stored trials give the same next configuration in any process. The stage goes in steps:
each step adds ``batch_size(tuning)`` tuning trials to every variant (1 for fewer than 16
trials, ``trials // 8`` from 16), and the next step is asked only when no trial of the
comparison is active, so TPE sees every score before it asks again, and all variants move
together (equal budgets at every moment). When every variant has its ``trials`` tuning
trials and none is active, each variant's best configuration (``selected_configs``: the best
``metric`` on the validation split, the first asked on a tie) trains over the comparison's
seeds, as final trials with that ``config``; adaptive rounds (``core.trials.rounds``) add
final trials with it too.

Safety. ``next_tuning_step`` runs in ``core.trials.finalize.finalize_comparison`` under the
comparison's row lock, after it has seen no active and no failed trial and no cancel, like a
round's decision; a (comparison, variant, stage, seed) is unique, so a step is never added
twice, and a step lost to a crash is taken by the sweeper, which finalizes every open
comparison on each pass. The trials were counted in ``trials_total`` at submit.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.report.tuning_rows import load_tuning_observations as tuning_observations
from core.report.tuning_rows import observation_of
from core.seeds import MAX_SEED
from core.spec import StoredSpec
from core.status import TrialStage
from core.store.tables import Comparison, Trial, new_id
from core.trials.planning import build_trials, fill_reused
from core.trials.reuse import library_versions, trial_hash
from core.trials.tuning_checks import tuning_epochs
from core.tuning.search import Observation, suggest
from core.tuning_space import TuningSpec

__all__ = [
    "batch_size",
    "next_tuning_step",
    "observation_of",
    "search_seed",
    "select_config",
    "selected_configs",
    "tuning_observations",
    "tuning_seeds",
]

log = logging.getLogger("archbench.tuning")


def tuning_seeds(spec: StoredSpec) -> list[int]:
    """The seeds of tuning trials 0..trials-1 (none without tuning), as the docstring says."""
    if spec.tuning is None:
        return []
    schedule = spec.schedule
    used = set() if schedule is not None else set(spec.initial_seeds)
    floor = schedule.max - 1 if schedule is not None else -1  # the last seed it may use
    out: list[int] = []
    seed = MAX_SEED
    while len(out) < spec.tuning.trials and seed > floor:
        if seed not in used:
            out.append(seed)
        seed -= 1
    if len(out) < spec.tuning.trials:  # the server's seed limits keep a spec from this
        raise ValueError("the seeds schedule leaves no room for the tuning seeds")
    return out


def search_seed(spec: StoredSpec) -> int:
    """The sampler's base seed, the same for every variant: the dataset's ``split_seed``."""
    return spec.dataset.split_seed


def batch_size(tuning: TuningSpec) -> int:
    """How many tuning trials each variant gets per step: 1 below 16 trials (a sequential
    search), ``trials // 8`` from 16 (TPE's constant liar spreads a batch's asks)."""
    return 1 if tuning.trials < 16 else tuning.trials // 8


def select_config(
    observations: list[Observation], *, maximize: bool
) -> tuple[dict[str, Any] | None, float | None]:
    """The best complete observation's config and score (the first asked on a tie); None and
    None when none completed."""
    best: Observation | None = None
    for obs in observations:
        if obs.state != "complete" or obs.value is None:
            continue
        better = best is None or best.value is None
        if not better and best is not None and best.value is not None:
            better = obs.value > best.value if maximize else obs.value < best.value
        if better:
            best = obs
    if best is None:
        return None, None
    return dict(best.params), best.value


def selected_configs(session: Session, comparison: Comparison) -> dict[str, dict[str, Any] | None]:
    """Variant name -> the config its final trials train with (``select_config`` over its
    tuning trials); None for a variant that trains at the spec's own settings (no tuning, or
    no tuning trial completed). Every variant of the spec is a key."""
    tuning = comparison.spec.tuning
    names = comparison.spec.variant_names
    if tuning is None:
        return dict.fromkeys(names)
    observed = tuning_observations(session, comparison.id, tuning.metric)
    return {
        name: select_config(observed.get(name, []), maximize=tuning.maximize)[0] for name in names
    }


def _tuning_rows(session: Session, comparison: Comparison) -> list[Trial]:
    """New tuning trials for the next step of every variant that has fewer than ``trials``:
    each config asked with the trials asked before it in this step seen as running."""
    spec = comparison.spec
    tuning = spec.tuning
    assert tuning is not None
    observed = tuning_observations(session, comparison.id, tuning.metric)
    seeds = tuning_seeds(spec)
    versions = library_versions()
    epochs = tuning_epochs(tuning, spec.training.epochs)
    rows: list[Trial] = []
    for index, variant in enumerate(spec.variants):
        history = list(observed.get(variant.name, []))
        analysis = comparison.analyses[variant.name]
        for _ in range(min(batch_size(tuning), tuning.trials - len(history))):
            config = suggest(tuning, history, seed=search_seed(spec))
            seed = seeds[len(history)]
            history.append(Observation(config, "running"))
            rows.append(
                Trial(
                    id=new_id(),
                    comparison_id=comparison.id,
                    variant=variant.name,
                    variant_index=index,
                    seed=seed,
                    stage=TrialStage.TUNING,
                    config=config,
                    params=analysis.params,
                    trainable_params=analysis.trainable_params,
                    flops=analysis.flops,
                    epochs_planned=epochs,
                    trial_hash=trial_hash(
                        spec, index, seed, versions, stage=TrialStage.TUNING, config=config
                    ),
                )
            )
    return rows


def _has_final(session: Session, comparison_id: str) -> bool:
    return (
        session.scalar(
            select(Trial.id)
            .where(Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TEST)
            .limit(1)
        )
        is not None
    )


def next_tuning_step(session: Session, comparison: Comparison) -> list[str] | None:
    """Add the next step of the tuning stage, or the final trials at the selected configs
    when the stage is done; returns the ids of the added trials still to train (possibly
    empty), or None when there is nothing to add (no tuning, or the final trials exist).

    The caller (``finalize_comparison``) holds the comparison's row lock and has seen no
    active or failed trial and no cancel."""
    spec = comparison.spec
    if spec.tuning is None:
        return None
    while True:
        rows = _tuning_rows(session, comparison)
        stage = "tuning"
        if not rows:
            if _has_final(session, comparison.id):
                return None
            configs = selected_configs(session, comparison)
            rows = build_trials(
                comparison.id, spec, comparison.analyses, spec.initial_seeds, configs=configs
            )
            stage = "test"
        session.add_all(rows)
        session.flush()
        pending = fill_reused(session, comparison, rows) if spec.reuse else rows
        log.info(
            "comparison %s: the %s stage adds %d trials (%d to train)",
            comparison.id,
            stage,
            len(rows),
            len(pending),
            extra={"comparison_id": comparison.id},
        )
        if pending:
            return [t.id for t in pending]
