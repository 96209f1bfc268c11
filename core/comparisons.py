"""Creating and cancelling comparisons: the database side, shared by api and cli."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyMismatch
from core.lifecycle import finalize_comparison
from core.tables import TERMINAL_STATES, Comparison, Trial, utcnow
from core.validation import ValidatedComparison

__all__ = ["body_hash", "cancel_comparison", "create_comparison"]


def body_hash(body: Any) -> str:
    """A stable hash of a JSON body (key order does not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def create_comparison(
    session: Session,
    *,
    tenant: str,
    validated: ValidatedComparison,
    idempotency_key: str | None,
    request_hash: str,
) -> tuple[Comparison, list[str], bool]:
    """Store a comparison and its trials and commit; returns (row, trial ids, created)."""
    if idempotency_key:
        existing = _by_key(session, tenant, idempotency_key, request_hash)
        if existing is not None:
            return existing, [], False
    spec = validated.spec
    comparison = Comparison(
        tenant=tenant,
        name=spec["name"],
        status="queued",
        spec=spec,
        analyses=validated.analyses,
        trials_total=validated.trials_total,
        epochs_total=validated.epochs_total,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    session.add(comparison)
    session.flush()
    trials = []
    for index, variant in enumerate(spec["variants"]):
        analysis = validated.analyses[variant["name"]]
        for seed in spec["seeds"]:
            trials.append(
                Trial(
                    comparison_id=comparison.id,
                    variant=variant["name"],
                    variant_index=index,
                    seed=seed,
                    params=analysis["params"],
                    trainable_params=analysis["trainable_params"],
                    flops=analysis["flops"],
                    epochs_planned=spec["training"]["epochs"],
                )
            )
    session.add_all(trials)
    try:
        session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer with its row.
        session.rollback()
        if idempotency_key:
            existing = _by_key(session, tenant, idempotency_key, request_hash)
            if existing is not None:
                return existing, [], False
        raise
    return comparison, [t.id for t in trials], True


def _by_key(session: Session, tenant: str, key: str, request_hash: str) -> Comparison | None:
    existing = session.scalar(
        select(Comparison).where(Comparison.tenant == tenant, Comparison.idempotency_key == key)
    )
    if existing is not None and existing.request_hash != request_hash:
        raise IdempotencyMismatch()
    return existing


def cancel_comparison(session: Session, comparison: Comparison) -> None:
    """Request cancellation: queued trials never start, running ones stop at a batch boundary."""
    if comparison.status in TERMINAL_STATES:
        raise Conflict(f"The comparison already ended ({comparison.status}); nothing to cancel.")
    comparison.cancel_requested = True
    session.execute(
        update(Trial)
        .where(Trial.comparison_id == comparison.id, Trial.status == "queued")
        .values(status="cancelled", finished_at=utcnow(), stop_reason="cancelled")
        .execution_options(synchronize_session=False)
    )
    session.flush()
    finalize_comparison(session, comparison.id)
    session.commit()
    session.refresh(comparison)
