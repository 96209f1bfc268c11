"""A trial's stage and tuned config, as the worker reads them, and the pruner's question.

A tuning trial trains for the tuning's epochs with its ``config`` applied
(``core.trials.tuned``), is scored on the validation split only (never evaluated on the test
split, nothing of it stored), and, with a pruner, asks after each stored epoch whether to stop
(``core.tuning.search.should_prune``, against the variant's other tuning trials as stored):
the answer is returned by the next stop check, and the trial ends succeeded with the stop
reason ``pruned``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.spec import StoredSpec
from core.store.db import session_scope
from core.store.tables import EpochMetric, Trial
from core.trials.tuning import search_seed, tuning_observations
from core.tuning.search import should_prune

__all__ = ["prune_now", "stage_of"]


def stage_of(trial_id: str) -> tuple[str, dict[str, Any] | None]:
    """The trial's stage and tuned config (None: the spec's own settings)."""
    with session_scope() as s:
        row = s.execute(select(Trial.stage, Trial.config).where(Trial.id == trial_id)).one()
    return str(row[0]), row[1]


def prune_now(
    spec: StoredSpec, comparison_id: str, trial_id: str, config: dict[str, Any] | None
) -> bool:
    """Whether the tuning's pruner stops this tuning trial now, from its stored epochs and the
    stored tuning trials of its variant (False without a pruner)."""
    tuning = spec.tuning
    if tuning is None or tuning.pruner is None:
        return False
    with session_scope() as s:
        variant = s.scalar(select(Trial.variant).where(Trial.id == trial_id))
        others = tuning_observations(s, comparison_id, tuning.metric, exclude=trial_id)
        rows = s.execute(
            select(EpochMetric.epoch, EpochMetric.values).where(EpochMetric.trial_id == trial_id)
        ).all()
    scores = {
        int(epoch): float(values[tuning.metric])
        for epoch, values in rows
        if isinstance((values or {}).get(tuning.metric), int | float)
    }
    return should_prune(
        tuning,
        others.get(str(variant), []),
        config or {},
        scores,
        seed=search_seed(spec),
    )
