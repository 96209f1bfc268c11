"""The stored tuning trials of a comparison, as the search and the report read them.

A tuning trial is a ``Trial`` row with ``stage == "tuning"``: its ``config`` holds the knobs
it trained with, its per-epoch rows the validation scores. Its final score is the best over
its epochs of the tuning metric (``best_val_accuracy`` for accuracy, the least validation
loss for loss); it is ``complete`` when it succeeded, ``pruned`` when the pruner stopped it
(``stop_reason == "pruned"``), ``failed`` when it failed or was cancelled, and ``running``
while queued or running (the sampler spreads parallel asks over those).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.spec import StoredSpec
from core.status import TrialStage, TrialStatus
from core.store.tables import EpochMetric, Trial
from core.tuning.search import Observation, State
from core.tuning.space import TuningSpec

__all__ = ["PRUNED", "load_tuning_observations", "tuning_spec_of"]

PRUNED = "pruned"
"""The ``stop_reason`` of a tuning trial the pruner stopped."""


def tuning_spec_of(spec: StoredSpec) -> TuningSpec | None:
    """The comparison's tuning block, or None without a tuning stage."""
    return None if spec.tuning is None else TuningSpec.model_validate(spec.tuning)


def _state(trial: Trial) -> State:
    if trial.status in (TrialStatus.QUEUED, TrialStatus.RUNNING):
        return "running"
    if trial.status == TrialStatus.SUCCEEDED:
        return "pruned" if trial.stop_reason == PRUNED else "complete"
    return "failed"


def load_tuning_observations(
    session: Session, comparison_id: str, metric: str
) -> dict[str, list[Observation]]:
    """Each variant's tuning trials, in the order they were asked (by their number), with
    their configurations, states, final scores and per-epoch ``metric`` scores."""
    trials = list(
        session.scalars(
            select(Trial)
            .where(Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TUNING)
            .order_by(Trial.variant_index, Trial.seed, Trial.replicate)
        )
    )
    scores: dict[str, dict[int, float]] = defaultdict(dict)
    if trials:
        rows = session.execute(
            select(EpochMetric.trial_id, EpochMetric.epoch, EpochMetric.values)
            .join(Trial, Trial.id == EpochMetric.trial_id)
            .where(Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TUNING)
        )
        for trial_id, epoch, values in rows:
            value = _number((values or {}).get(metric))
            if value is not None:
                scores[trial_id][int(epoch)] = value
    out: dict[str, list[Observation]] = defaultdict(list)
    for t in trials:
        per_epoch = scores.get(t.id, {})
        state = _state(t)
        out[t.variant].append(
            Observation(
                params=dict(t.config or {}),
                state=state,
                value=_final(t, per_epoch, metric) if state == "complete" else None,
                intermediate=per_epoch,
            )
        )
    return dict(out)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _final(trial: Trial, per_epoch: dict[int, float], metric: str) -> float | None:
    if metric == "val_accuracy":
        if trial.best_val_accuracy is not None:
            return float(trial.best_val_accuracy)
        return max(per_epoch.values(), default=None)
    return min(per_epoch.values(), default=None)
