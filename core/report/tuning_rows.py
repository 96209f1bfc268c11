"""The stored tuning trials of a comparison, as the search and the report read them.

A tuning trial is a ``Trial`` row with ``stage == "tuning"``: its ``config`` holds the knobs
it trained with, its per-epoch rows the validation scores. Its final score is the best over
its epochs of the tuning metric (the highest accuracy, the lowest loss); it is ``complete``
when it succeeded, ``pruned`` when the pruner stopped it (``StopReason.PRUNED``), ``failed``
when it failed, was cancelled or has no finite score, and ``running`` while queued or running
(the sampler spreads parallel asks over those). ``core.trials.tuning`` (the search, the
selection) and the report read them through this one loader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.spec import StoredSpec
from core.status import StopReason, TrialStage, TrialStatus
from core.store.tables import EpochMetric, Trial
from core.tuning.search import Observation
from core.tuning_space import TuningSpec

__all__ = ["load_tuning_observations", "observation_of", "tuning_spec_of"]


def tuning_spec_of(spec: StoredSpec) -> TuningSpec | None:
    """The comparison's tuning block, or None without a tuning stage."""
    return spec.tuning


def observation_of(
    trial: Trial, epochs: Mapping[int, Mapping[str, Any]], metric: str
) -> Observation:
    """One stored tuning trial as the search reads it: its config, its state (a trial still
    queued or running is ``running``; one the pruner stopped is ``pruned``; failed, cancelled
    or without a finite score is ``failed``), its best ``metric`` over its epochs (the
    highest accuracy, the lowest loss) and its score after each epoch."""
    maximize = metric != "val_loss"
    intermediate = {
        int(e): float(v[metric])
        for e, v in sorted(epochs.items())
        if isinstance(v.get(metric), int | float) and math.isfinite(float(v[metric]))
    }
    params = dict(trial.config or {})
    if trial.status in (TrialStatus.QUEUED, TrialStatus.RUNNING):
        return Observation(params, "running", None, intermediate)
    if trial.status == TrialStatus.SUCCEEDED and trial.stop_reason == StopReason.PRUNED:
        return Observation(params, "pruned", None, intermediate)
    if trial.status != TrialStatus.SUCCEEDED or not intermediate:
        return Observation(params, "failed", None, intermediate)
    best = max(intermediate.values()) if maximize else min(intermediate.values())
    return Observation(params, "complete", best, intermediate)


def load_tuning_observations(
    session: Session,
    comparison_id: str,
    metric: str = "val_accuracy",
    *,
    exclude: str | None = None,
) -> dict[str, list[Observation]]:
    """Variant name -> its tuning trials as ``Observation``s, in ask order (tuning trial 0
    first), scored by ``metric`` (the comparison's ``tuning.metric``). For the search, the
    selection and the report's tuning section; every variant with a tuning trial is a key.
    ``exclude``: a trial id left out (the running trial a pruner judges)."""
    query = (
        select(Trial)
        .where(Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TUNING)
        .order_by(Trial.variant_index, Trial.seed.desc())
    )
    if exclude is not None:
        query = query.where(Trial.id != exclude)
    trials = list(session.scalars(query))
    epochs: dict[str, dict[int, Mapping[str, Any]]] = {t.id: {} for t in trials}
    if trials:
        rows = session.execute(
            select(EpochMetric.trial_id, EpochMetric.epoch, EpochMetric.values).where(
                EpochMetric.trial_id.in_(list(epochs))
            )
        )
        for trial_id, epoch, values in rows:
            epochs[trial_id][int(epoch)] = values or {}
    out: dict[str, list[Observation]] = {}
    for trial in trials:
        out.setdefault(trial.variant, []).append(observation_of(trial, epochs[trial.id], metric))
    return out
