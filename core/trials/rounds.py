"""Adaptive seeds: the rounds of a comparison whose ``seeds`` is ``{"min", "max", "step"}``.

A comparison starts with seeds ``0..min-1`` of every variant. When every trial of the current
round has ended, ``core.trials.finalize.finalize_comparison`` asks ``next_round``: the report of
the trials so far, built from their primary metric only (``decision_trials``), goes to
``core.report.build.needs_more_seeds``, and while it says some tested pair is undecided and
fewer than ``max`` seeds ran, the next ``step`` seeds of every variant are added (seed-major,
like the first round) and the comparison stays open. A trial of the new round that an
earlier comparison already trained is reused at once, and the decision is asked again.

Safety: the caller holds the comparison's row lock and has seen no active trial; the update
of ``trials_total`` is guarded by its old value as well (SQLite takes no row locks), and a
(comparison, variant, seed) is unique, so a round is never added twice. A decision lost to a
crash is taken again by the sweeper, which finalizes every open comparison on each pass.
"""

from __future__ import annotations

import logging

from sqlalchemy import distinct, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.report import build as report_module
from core.report.build import TrialResult
from core.status import ACTIVE, TrialStage
from core.store.db import rows_changed
from core.store.tables import Comparison, Trial
from core.trials.planning import build_trials, fill_reused
from core.trials.tuning import selected_configs

__all__ = ["decision_trials", "needs_more", "next_round", "seeds_per_variant"]

log = logging.getLogger("archbench.rounds")


def seeds_per_variant(session: Session, comparison_id: str) -> int:
    """How many seeds each variant has now (they are 0..n-1; tuning trials are not counted)."""
    return int(
        session.scalar(
            select(func.count(distinct(Trial.seed))).where(
                Trial.comparison_id == comparison_id, Trial.stage == TrialStage.TEST
            )
        )
        or 0
    )


def decision_trials(session: Session, comparison: Comparison) -> list[TrialResult]:
    """The comparison's trials as the round's decision reads them: variant, seed, status, stop
    reason and the primary metric, one row per trial (not the replicates: they are no score);
    no learning curve, no predictions."""
    metric = comparison.spec.primary_metric
    rows = session.execute(
        select(
            Trial.variant, Trial.seed, Trial.status, Trial.stop_reason, Trial.__table__.c[metric]
        )
        .where(
            Trial.comparison_id == comparison.id,
            Trial.stage == TrialStage.TEST,
            Trial.replicate == 0,
        )
        .order_by(Trial.variant_index, Trial.seed)
    )
    return [
        TrialResult(
            variant=variant,
            seed=int(seed),
            status=status,
            params=None,
            flops=None,
            test_accuracy=value if metric == "test_accuracy" else None,
            test_loss=value if metric == "test_loss" else None,
            best_val_accuracy=value if metric == "best_val_accuracy" else None,
            train_seconds=None,
            epochs_done=0,
            epochs_planned=0,
            stop_reason=stop_reason,
            inference_ms_per_sample=None,
            curve=(),
        )
        for variant, seed, status, stop_reason, value in rows
    ]


def needs_more(session: Session, comparison: Comparison) -> bool:
    """The report's word on whether the round just ended leaves a tested pair undecided.

    It runs under the comparison's row lock, so it reads only what the decision needs
    (``decision_trials``): the pairwise tests of the primary metric and the design's looks
    are those of the full report (``core.report.load.load_report``), without the learning
    curves and the prediction differences that report also loads and computes.

    A report that cannot be built or judged ends the schedule with what ran (logged): the
    comparison must end rather than wait forever. A database error propagates (the sweeper
    takes the decision again on its next pass)."""
    try:
        report = report_module.build_report(
            comparison_id=comparison.id,
            primary_metric=comparison.spec.primary_metric,
            variant_order=comparison.spec.variant_names,
            trials=decision_trials(session, comparison),
            final=False,  # the caller saw the comparison active
            variant_info=comparison.analyses,
            design=comparison.spec.design,
        )
        return bool(report_module.needs_more_seeds(report))
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("comparison %s: the round's decision failed; ending it", comparison.id)
        return False


def next_round(session: Session, comparison: Comparison) -> list[str] | None:
    """Add the next round of seeds when the report needs it; returns the ids of the added
    trials still to train (possibly empty), or None when the schedule is over.

    The caller (``finalize_comparison``) holds the comparison's row lock, has checked that no
    trial is active, none failed and no cancel was asked for.
    """
    schedule = comparison.spec.schedule
    if schedule is None:
        return None
    while True:
        have = seeds_per_variant(session, comparison.id)
        target = schedule.next_count(have)
        if target <= have or not needs_more(session, comparison):
            return None
        trials = build_trials(
            comparison.id,
            comparison.spec,
            comparison.analyses,
            list(range(have, target)),
            configs=selected_configs(session, comparison),
        )
        epochs = comparison.spec.training.epochs
        old_total = comparison.trials_total
        grown = session.execute(
            update(Comparison)
            .where(
                Comparison.id == comparison.id,
                Comparison.trials_total == old_total,
                Comparison.status.in_(ACTIVE),
                Comparison.cancel_requested.is_(False),
            )
            .values(
                trials_total=old_total + len(trials),
                epochs_total=Comparison.epochs_total + len(trials) * epochs,
            )
            .execution_options(synchronize_session=False)
        )
        if not rows_changed(grown):
            return []  # another transaction added it (or the comparison ended): not ours
        session.add_all(trials)
        session.flush()
        session.refresh(comparison)
        pending = fill_reused(session, comparison, trials) if comparison.spec.reuse else trials
        log.info(
            "comparison %s: round %d of %d adds seeds %d..%d per variant (%d to train)",
            comparison.id,
            schedule.round_of(target),
            schedule.rounds_max,
            have,
            target - 1,
            len(pending),
            extra={"comparison_id": comparison.id},
        )
        if pending:
            return [t.id for t in pending]
