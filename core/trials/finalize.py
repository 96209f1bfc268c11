"""Finishing a comparison: when its last trial ends it succeeds, fails or is cancelled, or, for
adaptive seeds, the rounds (``core.trials.rounds``) add the next seeds instead.

This is the one place that joins the lifecycle's guarded updates (``core.trials.lifecycle``)
with the rounds' decision, so that the lifecycle itself never imports what decides rounds.
Called by the worker after each trial, by the sweeper on every pass, and by the submit and
cancel paths.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import Problem, TrialsFailed
from core.status import ACTIVE, TERMINAL, ComparisonStatus, TrialStatus
from core.store.db import rows_changed
from core.store.tables import Comparison, Trial, utcnow
from core.trials.dispatch import send_after_commit
from core.trials.lifecycle import failure_summary, progress_of
from core.trials.rounds import next_round
from core.trials.tuning import next_tuning_step

__all__ = ["finalize_comparison"]


def finalize_comparison(session: Session, comparison_id: str) -> ComparisonStatus | None:
    """Mark the comparison finished if no trial is active; returns its final status or None.

    A tuned comparison whose tuning step has ended is not finished either: the next step, or
    the final trials at the selected configs, are added (``core.trials.tuning``). An adaptive
    comparison (``seeds: {min, max, step}``) whose round has ended is not finished while the
    report says a tested pair needs more seeds: the next round's trials are added instead
    (``core.trials.rounds``). Either is sent when the session commits
    (``core.trials.dispatch``), and None is returned.
    Its row is locked first (after the trial rows this transaction wrote, as the lock order
    says), and the trial counts read again under that lock, so two workers that end the last
    two trials of a round at once add the round once: the second sees the first's new trials.
    """
    counts = progress_of(session, [comparison_id])[comparison_id]
    if any(counts[s] for s in ACTIVE):
        return None
    comparison = session.get(Comparison, comparison_id)
    if comparison is None or comparison.status not in ACTIVE:
        return None
    staged = comparison.spec.schedule is not None or comparison.spec.tuning is not None
    if staged and not comparison.cancel_requested:
        comparison = session.scalar(
            select(Comparison)
            .where(Comparison.id == comparison_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if comparison is None or comparison.status not in ACTIVE:
            return None
        counts = progress_of(session, [comparison_id])[comparison_id]
        if any(counts[s] for s in ACTIVE):
            return None
        if not counts[TrialStatus.FAILED] and not comparison.cancel_requested:
            added = next_tuning_step(session, comparison)
            if added is None:
                added = next_round(session, comparison)
            if added is not None:
                send_after_commit(session, added)
                return None
            counts = progress_of(session, [comparison_id])[comparison_id]
    error: Problem | None = None
    if comparison.cancel_requested:
        status = ComparisonStatus.CANCELLED
    elif counts[TrialStatus.FAILED]:
        status = ComparisonStatus.FAILED
        first = session.scalar(
            select(Trial)
            .where(Trial.comparison_id == comparison_id, Trial.status == TrialStatus.FAILED)
            .order_by(Trial.variant_index, Trial.seed, Trial.replicate)
            .limit(1)
        )
        ended = sum(counts[s] for s in TERMINAL)
        where = f"{first.variant}, seed {first.seed}" if first else "?"
        if first is not None and first.replicate:
            where += f", replicate {first.replicate}"
        first_detail = first.error.get("detail", "") if first is not None and first.error else ""
        title, summary = failure_summary(
            counts[TrialStatus.FAILED], succeeded=counts[TrialStatus.SUCCEEDED], ended=ended
        )
        error = TrialsFailed(
            f"{summary} First failure ({where}): {first_detail}", title=title
        ).to_problem()
    else:
        status = ComparisonStatus.SUCCEEDED
    result = session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, Comparison.status.in_(ACTIVE))
        .values(status=status, finished_at=utcnow(), error=error)
        .execution_options(synchronize_session=False)
    )
    return status if rows_changed(result) else None
