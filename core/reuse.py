"""Identical work is not done twice: a trial is identified by a hash of everything that
determines its result, and a comparison that asks for a trial already trained reuses it.

The hash covers the normalised architecture (layers and input shape), the dataset and its
split, the training settings, the seed, and the versions of TensorFlow, Keras and NumPy. The
api computes it from its own installed versions when a comparison is submitted; a worker that
trains with other versions rewrites it, so a stored hash always names what really produced
the result. Reuse is per tenant and can be turned off per comparison (``"reuse": false``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from core.lifecycle import mark_reused
from core.status import StopReason, TrialStatus
from core.tables import Comparison, EpochMetric, Trial, utcnow

__all__ = ["copy_result", "find_reusable", "library_versions", "trial_hash"]

RESULT_FIELDS = (
    "params",
    "trainable_params",
    "flops",
    "epochs_done",
    "train_seconds",
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "test_metrics",
    "inference_ms_per_sample",
    "stop_reason",
    "worker",
    "device",
    "started_at",
    "finished_at",
)


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
    spec: dict[str, Any], variant_index: int, seed: int, versions: dict[str, str | None]
) -> str:
    """The content hash of one trial of a normalised comparison spec."""
    variant = spec["variants"][variant_index]
    training = {k: v for k, v in spec["training"].items() if k != "max_seconds"}
    key = {
        "layers": variant["layers"],
        "input_shape": variant["input_shape"],
        "dataset": spec["dataset"],
        "training": training,
        "seed": seed,
        "versions": versions,
    }
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
            # Early stopping is part of the recipe; a time budget or a cancel is not.
            or_(Trial.stop_reason.is_(None), Trial.stop_reason == StopReason.EARLY_STOPPING),
        )
        .order_by(Trial.finished_at.desc())
    )
    found: dict[str, Trial] = {}
    for row in rows:
        if row.trial_hash is not None:
            found.setdefault(row.trial_hash, row)
    return found


def copy_result(session: Session, source: Trial, target: Trial) -> None:
    """Make ``target`` a finished trial with ``source``'s result and epoch rows."""
    for field in RESULT_FIELDS:
        setattr(target, field, getattr(source, field))
    mark_reused(target, source)
    session.flush()
    _copy_epochs(session, source.id, target.id)


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
