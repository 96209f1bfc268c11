"""Live MLflow logging: with ``ARCHBENCH_MLFLOW_TRACKING_URI`` set, every ended trial is logged
as an MLflow run (see ``core.exports.mlflow``), however it ended.

Driven from the database, like webhook delivery: every worker's main process runs ``log_due``
every ``mlflow_poll_seconds``. A pass finds ended trials with no row in ``mlflow_runs`` (or an
expired placeholder), so it also logs the trials no worker task ended: results reused at
submit, trials cancelled while queued, trials the sweeper gave up on. Per comparison it
claims the trials in a short transaction by inserting a placeholder ``mlflow_runs`` row
without a run id (``ON CONFLICT DO NOTHING ... RETURNING``: several workers never log the
same trial), logs them with no transaction open, then records the run ids; if MLflow fails, the
placeholders are dropped and that comparison is tried again after a backoff while the others
are logged. A placeholder left by an exporter that died expires after ``CLAIM_TTL``;
``core.exports.mlflow`` skips a trial whose run is already in the store (tagged with its id),
so a crash in between costs no duplicate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from core.config import Settings
from core.exports.mlflow import export_runs
from core.status import TERMINAL
from core.store.db import session_scope, upsert_insert
from core.store.tables import (
    RESULT_COLUMNS,
    Comparison,
    EpochMetric,
    MlflowRun,
    Trial,
    column_type,
    utcnow,
)

__all__ = ["WINDOW", "due_trials", "log_due"]

log = logging.getLogger("archbench.mlflow")

WINDOW = timedelta(days=7)  # trials that ended (or were created) longer ago are not looked at
BATCH = 200  # trials per pass at most
CLAIM_TTL = timedelta(minutes=10)  # a placeholder older than this is from a dead exporter
BACKOFF_FIRST = timedelta(seconds=30)  # a comparison MLflow refused waits this long, doubled
BACKOFF_MAX = timedelta(hours=1)  # after each further failure up to this
# comparison id -> (failures in a row, not before); this process's exporter only
_backoff: dict[str, tuple[int, datetime]] = {}

# The trial's identity and its numeric result columns (core.store.tables.RESULT_COLUMNS).
TRIAL_KEYS = (
    "id",
    "variant",
    "seed",
    "status",
    *(c for c in RESULT_COLUMNS if column_type(Trial, c) in (int, float)),
    "reused_from",
)


def due_trials(
    session: Session, now: datetime, limit: int = BATCH, skip: Collection[str] = ()
) -> dict[str, list[str]]:
    """Ended trials not yet logged to MLflow (nor claimed by a live exporter), by comparison
    (oldest first), leaving out the comparisons in ``skip`` (waiting out a backoff: they must
    not fill the batch and starve the others).

    A reused trial carries its source's ``finished_at``, so ``created_at`` counts as recent too.
    """
    cutoff = now - WINDOW
    where = [
        or_(
            MlflowRun.trial_id.is_(None),
            and_(MlflowRun.run_id.is_(None), MlflowRun.logged_at < now - CLAIM_TTL),
        ),
        Trial.status.in_(TERMINAL),
        or_(Trial.finished_at >= cutoff, Trial.created_at >= cutoff),
    ]
    if skip:
        where.append(Trial.comparison_id.not_in(list(skip)))
    rows = session.execute(
        select(Trial.comparison_id, Trial.id)
        .outerjoin(MlflowRun, MlflowRun.trial_id == Trial.id)
        .where(*where)
        .order_by(Trial.created_at, Trial.id)
        .limit(limit)
    )
    out: dict[str, list[str]] = defaultdict(list)
    for comparison_id, trial_id in rows:
        out[comparison_id].append(trial_id)
    return dict(out)


def _trial_row(trial: Trial) -> dict[str, Any]:
    row: dict[str, Any] = {k: getattr(trial, k) for k in TRIAL_KEYS}
    for key in ("started_at", "finished_at"):
        value = getattr(trial, key)
        row[key] = value.isoformat() if value else None
    return row


def _claim(
    settings: Settings, comparison_id: str, trial_ids: list[str]
) -> tuple[datetime, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]] | None:
    """Claim a comparison's due trials for this exporter in one short transaction: each gets
    a placeholder row in ``mlflow_runs`` (no run id yet), stamped with this claim's time.

    Only the rows this statement itself inserted (``ON CONFLICT DO NOTHING``) or took over
    from a dead exporter (a guarded UPDATE) are ours, as ``RETURNING`` says: a concurrent
    exporter's insert waits for ours and then does nothing, and its guarded UPDATE re-checks
    the row after ours commits. (Row locks on the trials were not enough: a lock taken after
    the other exporter committed does not re-read its placeholder.) Returns the claim's stamp
    and what to export, or None when nothing is ours."""
    now = utcnow()
    uri = settings.mlflow_tracking_uri[:1000]
    with session_scope() as s:
        ended = list(
            s.scalars(select(Trial.id).where(Trial.id.in_(trial_ids), Trial.status.in_(TERMINAL)))
        )
        if not ended:
            return None
        rows = [
            {"trial_id": t, "run_id": None, "tracking_uri": uri, "logged_at": now} for t in ended
        ]
        ours = set(
            s.scalars(
                upsert_insert(s, MlflowRun)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[MlflowRun.trial_id])
                .returning(MlflowRun.trial_id)
            )
        )
        ours |= set(
            s.scalars(
                update(MlflowRun)
                .where(
                    MlflowRun.trial_id.in_(ended),
                    MlflowRun.run_id.is_(None),
                    MlflowRun.logged_at < now - CLAIM_TTL,  # an exporter that died
                )
                .values(tracking_uri=uri, logged_at=now)
                .returning(MlflowRun.trial_id)
                .execution_options(synchronize_session=False)
            )
        )
        if not ours:
            return None
        trials = list(
            s.scalars(
                select(Trial).where(Trial.id.in_(ours)).order_by(Trial.variant_index, Trial.seed)
            )
        )
        comparison = s.get(Comparison, comparison_id)
        assert comparison is not None
        info = {"id": comparison.id, "name": comparison.name, "spec": comparison.spec.dump()}
        epochs = [
            {"trial_id": trial_id, "epoch": epoch, **values, "seconds": seconds}
            for trial_id, epoch, values, seconds in s.execute(
                select(
                    EpochMetric.trial_id, EpochMetric.epoch, EpochMetric.values, EpochMetric.seconds
                )
                .where(EpochMetric.trial_id.in_([t.id for t in trials]))
                .order_by(EpochMetric.trial_id, EpochMetric.epoch)
            )
        ]
        out = [_trial_row(t) for t in trials]
    return now, info, out, epochs


def _release(trial_ids: list[str], claimed_at: datetime) -> None:
    """Drop this exporter's placeholders (the export failed): the trials are due again. Only
    those stamped by this claim: one a later exporter took over stays its own."""
    with session_scope() as s:
        s.execute(
            delete(MlflowRun).where(
                MlflowRun.trial_id.in_(trial_ids),
                MlflowRun.run_id.is_(None),
                MlflowRun.logged_at == claimed_at,
            )
        )


def _log_comparison(settings: Settings, comparison_id: str, trial_ids: list[str]) -> int:
    """Log one comparison's due trials; returns how many.

    Three short transactions, none open while MLflow is called: claim the trials
    (placeholders), export, then record the run ids (or, when MLflow refused, drop the
    placeholders). A crash in between leaves placeholders that expire after ``CLAIM_TTL``;
    the next export finds the runs already in the store by their tag and logs none twice.
    """
    claimed = _claim(settings, comparison_id, trial_ids)
    if claimed is None:
        return 0
    claimed_at, info, rows, epochs = claimed
    ids = [str(r["id"]) for r in rows]
    try:
        run_ids = export_runs(settings.mlflow_tracking_uri, info, rows, epochs)
    except BaseException:
        try:
            _release(ids, claimed_at)
        except Exception as exc:  # the database is away too: the claims expire
            log.warning("could not release MLflow claims: %s", exc)
        raise
    with session_scope() as s:
        for trial_id, run_id in zip(ids, run_ids, strict=True):
            s.execute(
                update(MlflowRun)
                .where(MlflowRun.trial_id == trial_id, MlflowRun.logged_at == claimed_at)
                .values(run_id=run_id, logged_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    log.info("logged %d trial(s) to MLflow", len(ids), extra={"comparison_id": comparison_id})
    return len(ids)


def log_due(settings: Settings) -> int:
    """One pass: log every ended, not yet logged trial; returns how many were logged.

    A comparison MLflow refuses (its experiment deleted in the store, a value the store
    rejects) is skipped, and tried again after a backoff that doubles with each failure
    (``BACKOFF_FIRST`` up to ``BACKOFF_MAX``), so it neither stops the others from being
    logged nor fills the log. Two failures in a row end the pass (the store itself is down
    or refusing everything: no need to wait for each comparison in turn); the comparisons
    that failed wait out their backoff, so the next pass starts with others.
    """
    if not settings.mlflow_tracking_uri:
        return 0
    now = utcnow()
    for comparison_id, (_, retry_at) in list(_backoff.items()):
        if retry_at < now - BACKOFF_MAX:  # not retried since: no longer due
            del _backoff[comparison_id]
    waiting = {c for c, (_, retry_at) in _backoff.items() if retry_at > now}
    with session_scope() as s:
        due = due_trials(s, now, skip=waiting)
    done = 0
    in_a_row = 0
    for comparison_id, trial_ids in due.items():
        if in_a_row >= 2:
            break
        failures = _backoff.get(comparison_id, (0, now))[0]
        try:
            done += _log_comparison(settings, comparison_id, trial_ids)
        except Exception:
            in_a_row += 1
            failures += 1
            wait = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
            _backoff[comparison_id] = (failures, now + wait)
            log.exception(
                "logging to MLflow failed (%d in a row); this comparison is tried again in %.0f s",
                failures,
                wait.total_seconds(),
                extra={"comparison_id": comparison_id},
            )
        else:
            in_a_row = 0
            _backoff.pop(comparison_id, None)
    return done
