"""Identical work is not done twice: a trial is identified by a hash of everything that
determines its result, and a comparison that asks for a trial already trained reuses it.

The hash covers the normalised architecture (layers and input shape), the dataset and its
split (the design, ``per_seed`` or ``fixed``, with its fractions, ``split_seed`` and
``max_samples``; under the per-seed design also the probe set reserved before the seeds'
splits, which changes every seed's training data), the training settings, the seed (and a
replicate's initialisation seed, ``core.seeding``), the seeding scheme of the worker
(``SEEDING``), and the versions of TensorFlow, Keras and NumPy. The api computes it from its
own installed versions when a comparison is submitted; a worker that trains with other
versions rewrites it, so a stored hash always names what really produced the result. Reuse is
per tenant and can be turned off per comparison (``"reuse": false``).

A reused trial refers to the stored analysis (predictions, Grams) of the trial that computed
it (``Trial.analysis_id``) instead of copying it: a reused comparison adds its trial and epoch
rows, not megabytes. The analysis rows outlive their trial while another trial refers to them
and are removed with the last reference (``collect_unreferenced``, run by the sweeper).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from sqlalchemy import delete, exists, insert, or_, select
from sqlalchemy.orm import Session

from core.seeding import init_seed
from core.spec import StoredSpec
from core.status import StopReason, TrialStage, TrialStatus
from core.store.db import rows_changed
from core.store.tables import (
    RESULT_COLUMNS,
    Comparison,
    EpochMetric,
    Trial,
    TrialCorruptionScore,
    TrialLayerGram,
    TrialPrediction,
    utcnow,
)
from core.trials.lifecycle import mark_reused
from core.trials.tuned import trial_setup

__all__ = [
    "SEEDING",
    "collect_unreferenced",
    "copy_result",
    "find_reusable",
    "library_versions",
    "trial_hash",
]

SEEDING = 2
"""How the worker turns a trial seed into its random draws; a change makes every earlier result
unreusable. 2: the seed is set again right before fit, so data order follows the seed alone."""


@functools.cache
def library_versions() -> dict[str, str | None]:
    """The versions of the libraries that decide a training result, as installed here."""
    out: dict[str, str | None] = {}
    for name in ("tensorflow", "keras", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def trial_hash(
    spec: StoredSpec,
    variant_index: int,
    seed: int,
    versions: dict[str, str | None],
    replicate: int = 0,
    *,
    stage: str = TrialStage.TEST,
    config: Mapping[str, Any] | None = None,
) -> str:
    """The content hash of one trial of a stored comparison spec (its JSON, as stored: the
    hashes of trials stored earlier stay what they were). A replicate (``replicate`` >= 1)
    adds its initialisation seed (``core.seeding``); replicate 0 keeps the key it had. A tuned
    ``config`` is applied to the settings and layers hashed (``core.trials.tuned``) and hashed
    itself; a tuning trial (never tested) has ``stage`` in its key, a tested trial without a
    config keeps its old key."""
    variant = spec.variants[variant_index]
    training, layers = trial_setup(spec, variant_index, stage=stage, config=config)
    key: dict[str, Any] = {
        "layers": layers,
        "input_shape": list(variant.input_shape),
        # A spec stored before the split designs existed loads with the fixed split it had.
        "dataset": spec.dataset.model_dump(mode="json"),
        "probe_reserved": spec.probe_reserved if spec.dataset.split == "per_seed" else 0,
        # The variant's effective settings; a setting left unset is not in the dump, so a spec
        # without the 1.2 knobs or a variant's own training keeps its key.
        "training": training.model_dump(mode="json", exclude={"max_seconds"}),
        "seed": seed,
        "seeding": SEEDING,
        "versions": versions,
    }
    if config is not None:
        key["config"] = dict(config)
    if stage != TrialStage.TEST:
        key["stage"] = str(stage)
    if spec.analysis is not None:
        # What the trial stores besides its scores (predictions, Grams over the probe set).
        # How many replicates the comparison asks for is not part of any one trial.
        key["analysis"] = spec.analysis.model_dump(mode="json", exclude={"replicates"})
    if spec.robustness is not None:
        # The corrupted copies it was scored on: reused only with those very scores.
        key["robustness"] = spec.robustness.model_dump(mode="json")
    if replicate:
        key["init_seed"] = init_seed(seed, replicate)
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def find_reusable(session: Session, tenant: str, hashes: list[str]) -> dict[str, Trial]:
    """For each hash, a finished trial of this tenant with that hash (the newest), if any."""
    if not hashes:
        return {}
    rows = session.scalars(
        select(Trial)
        .join(Comparison, Comparison.id == Trial.comparison_id)
        .where(
            Comparison.tenant == tenant,
            Trial.trial_hash.in_(hashes),
            Trial.status == TrialStatus.SUCCEEDED,
            # Early stopping and a divergence are part of the recipe (the same seed stops the
            # same way); a time budget or a cancel is not.
            or_(
                Trial.stop_reason.is_(None),
                Trial.stop_reason.in_((StopReason.EARLY_STOPPING, StopReason.DIVERGED)),
            ),
        )
        .order_by(Trial.finished_at.desc())
    )
    found: dict[str, Trial] = {}
    for row in rows:
        if row.trial_hash is not None:
            found.setdefault(row.trial_hash, row)
    return found


def copy_result(session: Session, source: Trial, target: Trial) -> None:
    """Make ``target`` a finished trial with ``source``'s result and epoch rows; its stored
    analysis is ``source``'s, by reference (the trained trial's, however long the chain)."""
    for field in RESULT_COLUMNS:
        setattr(target, field, getattr(source, field))
    mark_reused(target, source)
    target.analysis_id = source.analysis_key
    session.flush()
    _copy_epochs(session, source.id, target.id)
    _copy_scores(session, source.id, target.id)


def _copy_scores(session: Session, source_id: str, target_id: str) -> None:
    """The source's scores under corruption (worker.robustness), under the target: a few
    small rows per trial, copied (the predictions and Grams are shared by reference)."""
    rows = session.execute(
        select(
            TrialCorruptionScore.corruption,
            TrialCorruptionScore.severity,
            TrialCorruptionScore.accuracy,
            TrialCorruptionScore.loss,
            TrialCorruptionScore.n,
        ).where(TrialCorruptionScore.trial_id == source_id)
    ).all()
    if rows:
        session.execute(
            insert(TrialCorruptionScore),
            [
                {"trial_id": target_id, "corruption": c, "severity": v, "accuracy": a}
                | {"loss": loss, "n": n}
                for c, v, a, loss, n in rows
            ],
        )


def collect_unreferenced(session: Session) -> int:
    """Remove the stored analysis rows no trial refers to any more (their trial and every
    trial reusing them were deleted); returns how many rows went."""
    removed = 0
    for table in (TrialPrediction, TrialLayerGram):
        unreferenced = ~exists().where(Trial.id == table.trial_id) & ~exists().where(
            Trial.analysis_id == table.trial_id
        )
        result = session.execute(
            delete(table).where(unreferenced).execution_options(synchronize_session=False)
        )
        removed += rows_changed(result)
    return removed


def _copy_epochs(session: Session, source_id: str, target_id: str) -> None:
    rows = session.execute(
        select(EpochMetric.epoch, EpochMetric.values, EpochMetric.seconds).where(
            EpochMetric.trial_id == source_id
        )
    ).all()
    if rows:
        now = utcnow()
        session.execute(
            insert(EpochMetric),
            [
                {"trial_id": target_id, "epoch": e, "values": v, "seconds": s, "recorded_at": now}
                for e, v, s in rows
            ],
        )
