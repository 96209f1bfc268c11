"""Planning a comparison's trials: the rows for a set of seeds, in queue order, and the ones an
earlier comparison already trained (filled from its results, never trained again).

Used by the submit path (``core.trials.comparisons``) and by an adaptive comparison's next
round (``core.trials.rounds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from core.spec import StoredSpec
from core.store.tables import Comparison, Trial, new_id, utcnow
from core.trials.reuse import copy_result, find_reusable, library_versions, trial_hash
from models.analysis import Analysis

__all__ = ["build_trials", "fill_reused"]


def build_trials(
    comparison_id: str,
    spec: StoredSpec,
    analyses: Mapping[str, Analysis],
    seeds: list[int],
    *,
    configs: Mapping[str, dict[str, Any] | None] | None = None,
) -> list[Trial]:
    """New tested trial rows for ``seeds`` of every variant, in queue order: seed-major, the
    variants interleaved (seed 0 of every variant, then seed 1, ...), so that a variant's timing
    is not confounded with when it ran (a machine warming up, or busy with other work). Each
    seed's variants are followed by their ``analysis.replicates`` (replicate 1 of every variant,
    then 2, ...): the same data seed, another initialisation seed (``core.seeding``).
    ``configs``: each variant's tuned config (``core.trials.tuning``), if any."""
    versions = library_versions()
    trials = []
    for seed in seeds:
        for replicate in range(spec.runs_per_seed):
            for index, variant in enumerate(spec.variants):
                analysis = analyses[variant.name]
                config = (configs or {}).get(variant.name)
                trials.append(
                    Trial(
                        id=new_id(),
                        comparison_id=comparison_id,
                        variant=variant.name,
                        variant_index=index,
                        seed=seed,
                        replicate=replicate,
                        config=config,
                        params=analysis.params,
                        trainable_params=analysis.trainable_params,
                        flops=analysis.flops,
                        epochs_planned=spec.training.epochs,
                        trial_hash=trial_hash(
                            spec, index, seed, versions, replicate, config=config
                        ),
                    )
                )
    return trials


def fill_reused(session: Session, comparison: Comparison, trials: list[Trial]) -> list[Trial]:
    """Fill trials already trained (same hash, same tenant) from their results; returns the
    rest, in their order."""
    found = find_reusable(
        session, comparison.tenant, [t.trial_hash for t in trials if t.trial_hash]
    )
    pending = []
    for trial in trials:
        source = found.get(trial.trial_hash or "")
        if source is None:
            pending.append(trial)
        else:
            copy_result(session, source, trial)
    if len(pending) < len(trials):
        if comparison.started_at is None:
            comparison.started_at = utcnow()
        session.flush()
    return pending
