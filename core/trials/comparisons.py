"""Creating and cancelling comparisons: the database side, shared by api and cli."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import false, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, IdempotencyMismatch, TooManyRequests
from core.status import ACTIVE, ComparisonStatus, TrialStatus
from core.store.db import rows_changed
from core.store.tables import Comparison, EpochMetric, Trial
from core.store.tenancy import owned
from core.trials.dispatch import outbox, send_after_commit
from core.trials.finalize import finalize_comparison
from core.trials.lifecycle import (
    LOCK_CONFLICT_TRIES,
    cancel_queued,
    lock_conflict,
)
from core.trials.planning import build_trials, fill_reused
from core.trials.storage import StorageQuotaExceeded, check_storage_quota, comparison_bytes
from core.trials.validation import ValidatedComparison

__all__ = [
    "body_hash",
    "cancel_comparison",
    "check_active_quota",
    "comparisons_page",
    "create_comparison",
    "lock_tenant_quota",
    "trial_key",
    "trial_states",
    "trials_in_order",
]

RETRY_AFTER_SECONDS = 30


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
    max_active: int | None = None,
    storage_quota_mb: int | None = None,
) -> tuple[Comparison, list[str], bool]:
    """Store a comparison and its trials and commit, which sends the trials to train
    (``core.trials.dispatch``); returns (row, the ids of the trials to train, created).

    With ``max_active``, a tenant that already has that many queued or running comparisons
    gets TooManyRequests (429, Retry-After) and nothing is stored; a replay is always answered.
    With ``storage_quota_mb``, one whose stored bytes plus what this comparison would add
    exceed it gets StorageQuotaExceeded (429, ``core.trials.storage``), nothing stored.
    """
    if idempotency_key:
        existing = _by_key(session, tenant, idempotency_key, request_hash)
        if existing is not None:
            return existing, [], False
    if max_active is not None:
        check_active_quota(session, tenant, max_active)
    spec = validated.spec
    comparison = Comparison(
        tenant=tenant,
        name=spec.name,
        status=ComparisonStatus.QUEUED,
        spec=spec,
        analyses=validated.analyses,
        trials_total=validated.trials_total,
        epochs_total=validated.epochs_total,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    try:
        session.add(comparison)
        session.flush()  # a concurrent request with the same key fails here, or at commit
    except IntegrityError as exc:
        return _lost_race(session, tenant, idempotency_key, request_hash, exc)
    # A tuned comparison starts with its tuning stage (core.trials.tuning, via finalize).
    seeds = spec.initial_seeds if spec.tuning is None else []
    trials = build_trials(comparison.id, spec, validated.analyses, seeds)
    session.add_all(trials)
    box = outbox(session)
    pending = fill_reused(session, comparison, trials) if spec.reuse else trials
    if storage_quota_mb is not None:
        if max_active is None:
            lock_tenant_quota(session, tenant)
        adds = comparison_bytes(spec, validated.analysis_bytes, trials, pending)
        try:
            check_storage_quota(session, comparison, adds, storage_quota_mb)
        except StorageQuotaExceeded:
            session.rollback()  # nothing of it is stored, and nothing is sent
            raise
    send_after_commit(session, [t.id for t in pending])
    if not pending:
        finalize_comparison(session, comparison.id)  # may add the next round or tuning step
        session.refresh(comparison)
    pending_ids = list(box.pending)  # what the commit sends (core.trials.dispatch)
    try:
        session.commit()
    except IntegrityError as exc:
        return _lost_race(session, tenant, idempotency_key, request_hash, exc)
    return comparison, pending_ids, True


def _lost_race(
    session: Session, tenant: str, key: str | None, request_hash: str, exc: IntegrityError
) -> tuple[Comparison, list[str], bool]:
    """Another request with the same Idempotency-Key committed first: answer with its row."""
    session.rollback()
    if key:
        existing = _by_key(session, tenant, key, request_hash)
        if existing is not None:
            return existing, [], False
    raise exc


def lock_tenant_quota(session: Session, tenant: str) -> None:
    """Serialise count-then-insert for ``tenant`` until this session's transaction ends.

    Without it two submits can both count ``max_active - 1`` and both insert. Postgres: a
    transaction-level advisory lock on a hash of the tenant (other tenants do not wait; taken
    in the transaction that counts and inserts, released by its commit or rollback). SQLite:
    the database has a single writer, but a plain SELECT takes no lock (pysqlite begins a
    transaction only at the first write), so the count could still be stale by the insert. A
    no-op UPDATE begins the write transaction first: the busy timeout queues the next submit
    behind this one, and its count then sees this insert (measured: five threads against a
    quota of two inserted five rows without it, two with it).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        key = func.hashtextextended(f"archbench:active-quota:{tenant}", 0)
        session.execute(select(func.pg_advisory_xact_lock(key)))
    elif dialect == "sqlite":
        session.execute(
            update(Comparison)
            .where(false())
            .values(tenant=Comparison.tenant)
            .execution_options(synchronize_session=False)
        )


def check_active_quota(session: Session, tenant: str, max_active: int) -> None:
    """TooManyRequests when the tenant has ``max_active`` comparisons queued or running.

    Takes the tenant's quota lock first (``lock_tenant_quota``): the caller must insert in the
    same transaction, so that concurrent submits cannot pass the limit together.
    """
    lock_tenant_quota(session, tenant)
    active = int(
        session.scalar(
            select(func.count())
            .select_from(Comparison)
            .where(Comparison.tenant == tenant, Comparison.status.in_(ACTIVE))
        )
        or 0
    )
    if active >= max_active:
        raise TooManyRequests(
            f"{active} comparisons are queued or running, and the limit is {max_active} per "
            "tenant (ARCHBENCH_MAX_ACTIVE_COMPARISONS_PER_TENANT); retry when one has ended.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _by_key(session: Session, tenant: str, key: str, request_hash: str) -> Comparison | None:
    existing = session.scalar(owned(Comparison, tenant).where(Comparison.idempotency_key == key))
    if existing is not None and existing.request_hash != request_hash:
        raise IdempotencyMismatch()
    return existing


def cancel_comparison(session: Session, comparison: Comparison) -> None:
    """Request cancellation: queued trials never start, running ones stop at a batch boundary.

    One guarded UPDATE decides: a comparison that ended in the meantime (its last trial
    finished after ``comparison`` was read) changes no row and is a Conflict, never a
    cancel request on an ended comparison.

    Rows are locked in the order every transaction takes them (``core.trials.lifecycle``): the
    trials first, by id, then the comparison. A worker's claim holds its trial and then
    updates the comparison; taking the comparison first here deadlocked with it. A deadlock
    or serialization failure all the same (another writer's order) is rolled back and the
    cancel runs again.
    """
    for attempt in range(LOCK_CONFLICT_TRIES):
        try:
            _cancel(session, comparison)
            return
        except DBAPIError as exc:
            if not lock_conflict(exc) or attempt + 1 == LOCK_CONFLICT_TRIES:
                raise
            session.rollback()


def _cancel(session: Session, comparison: Comparison) -> None:
    queued = list(
        session.scalars(
            select(Trial.id)
            .where(Trial.comparison_id == comparison.id, Trial.status == TrialStatus.QUEUED)
            .order_by(Trial.id)
            .with_for_update(key_share=True)  # what an UPDATE takes: FOR NO KEY UPDATE
        )
    )
    marked = session.execute(
        update(Comparison)
        .where(Comparison.id == comparison.id, Comparison.status.in_(ACTIVE))
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    if not rows_changed(marked):
        session.rollback()
        session.refresh(comparison)
        raise Conflict(f"The comparison already ended ({comparison.status}); nothing to cancel.")
    session.expire(comparison)  # finalize_comparison below must read cancel_requested anew
    # Only the rows locked above: a trial queued again since (its lease expired) is not
    # locked, and its next delivery or the sweeper sees cancel_requested and cancels it.
    cancel_queued(session, queued)
    session.flush()
    finalize_comparison(session, comparison.id)
    session.commit()
    session.refresh(comparison)


# --------------------------------------------------------------------------- reads


def comparisons_page(
    session: Session,
    tenant: str,
    *,
    status: str | None = None,
    name: str | None = None,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[Comparison], bool]:
    """A page of the tenant's comparisons, newest first, and whether there are more.

    ``status`` filters exactly, ``name`` by substring (case-insensitive, taken literally);
    ``after`` is the (created_at, id) of the last comparison of the previous page."""
    q = owned(Comparison, tenant)
    if status:
        q = q.where(Comparison.status == status)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Comparison.name.ilike(f"%{escaped}%", escape="\\"))
    if after:
        created_at, last_id = after
        q = q.where(
            (Comparison.created_at < created_at)
            | ((Comparison.created_at == created_at) & (Comparison.id < last_id))
        )
    rows = list(
        session.scalars(
            q.order_by(Comparison.created_at.desc(), Comparison.id.desc()).limit(limit + 1)
        )
    )
    return rows[:limit], len(rows) > limit


def trials_in_order(
    session: Session,
    comparison_id: str,
    *,
    after: tuple[int, int, int] | None = None,
    limit: int | None = None,
) -> Iterator[Trial]:
    """A comparison's trials by (variant_index, seed, replicate), from after ``after`` (that
    key of the last trial of the previous page), at most ``limit`` of them."""
    q = select(Trial).where(Trial.comparison_id == comparison_id)
    if after:
        index, seed, replicate = after
        q = q.where(
            (Trial.variant_index > index)
            | ((Trial.variant_index == index) & (Trial.seed > seed))
            | (
                (Trial.variant_index == index)
                & (Trial.seed == seed)
                & (Trial.replicate > replicate)
            )
        )
    q = q.order_by(Trial.variant_index, Trial.seed, Trial.replicate)
    if limit:
        q = q.limit(limit)
    yield from session.scalars(q)


def trial_key(session: Session, trial_id: str) -> tuple[int, int, int]:
    """The (variant_index, seed, replicate) a page of trials continues after."""
    trial = session.get_one(Trial, trial_id)
    return trial.variant_index, int(trial.seed), int(trial.replicate or 0)


def trial_states(session: Session, comparison_id: str) -> list[dict[str, Any]]:
    """Each trial's state as the event stream shows it, by (variant_index, seed)."""
    return [
        dict(row)
        for row in session.execute(
            select(
                Trial.id,
                Trial.variant,
                Trial.seed,
                Trial.replicate,
                Trial.status,
                Trial.started_at,
                Trial.epochs_done,
                Trial.test_accuracy,
                Trial.test_loss,
                Trial.error,
            )
            .where(Trial.comparison_id == comparison_id)
            .order_by(Trial.variant_index, Trial.seed, Trial.replicate)
        ).mappings()
    ]


def epochs_since(
    session: Session, trials: list[dict[str, Any]], epochs_seen: dict[str, int]
) -> list[dict[str, Any]]:
    """The epoch rows of ``trials`` (``trial_states``) after the last one seen of each, by
    trial and epoch: the trial's id, variant and seed, the epoch, its metrics and seconds."""
    new_epochs: list[dict[str, Any]] = []
    behind = [t["id"] for t in trials if t["epochs_done"] > epochs_seen.get(t["id"], 0)]
    if not behind:
        return new_epochs
    rows = session.execute(
        select(EpochMetric.trial_id, EpochMetric.epoch, EpochMetric.values, EpochMetric.seconds)
        .where(EpochMetric.trial_id.in_(behind))
        .order_by(EpochMetric.trial_id, EpochMetric.epoch)
    )
    by_id = {t["id"]: t for t in trials}
    for trial_id, epoch, values, seconds in rows:
        if epoch > epochs_seen.get(trial_id, 0):
            t = by_id[trial_id]
            new_epochs.append(
                {
                    "trial_id": trial_id,
                    "variant": t["variant"],
                    "seed": t["seed"],
                    "epoch": epoch,
                    **values,
                    "seconds": seconds,
                }
            )
    return new_epochs
