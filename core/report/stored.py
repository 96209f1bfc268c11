"""Answers computed once and served as stored: the report, the differences, a pair's similarity.

Each answer is a row of ``reports`` (``core.store.tables.StoredReport``) keyed by the
comparison and its kind, with the fingerprint of the rows it was computed from (``_fresh``:
the trials' counts per status, epochs, attempts, reuse and last finish and start, the
comparison's status, name and totals, and ``CODE_VERSION``). A read takes one short session to
compare the current fingerprint with the stored one and, when they agree, serves the stored
answer: nothing is recomputed. When they differ (a trial finished, an epoch was stored, a round
was decided, the comparison ended, or the code changed), the answer is computed again
without holding a pooled connection: every row is read in a short session of its own
(``core.store.db.ShortReads``), the computation runs with no connection checked out, and the
result is stored in another short session. Within one process, concurrent reads of the same
stale answer compute it once (a lock per answer); two processes may both compute it, and the
later write wins with the same content.

The worker refreshes a comparison's report after each trial it ends (``refresh``), so the api
normally finds it fresh; the api computes it only for what the worker has not (yet) stored.
The differences have a fingerprint of their own (the succeeded trials and whether the
comparison ended), so an interim report that changes with every epoch reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from sqlalchemy import and_, case, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.report.build import EpochPoint, TrialResult
from core.report.load import (
    add_stages,
    assemble_report,
    load_differences,
    load_trial_results,
    reuse_note,
)
from core.report.schema import Report
from core.report.similarity import similarity
from core.status import TERMINAL, TrialStatus
from core.store.db import ShortReads, session_scope, upsert_insert
from core.store.tables import Comparison, StoredReport, Trial, utcnow
from core.timestamps import json_default

__all__ = [
    "CODE_VERSION",
    "COMPUTED",
    "DIFFERENCES",
    "REPORT",
    "ServedReport",
    "refresh",
    "similarity_kind",
    "stored_report",
    "stored_report_json",
    "stored_similarity",
]

log = logging.getLogger("archbench.report")

REPORT = "report"
DIFFERENCES = "differences"
_FORMAT = "1"  # raise when the stored form of an answer changes


def _version() -> str:
    try:
        return metadata.version("archbench")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "source"


CODE_VERSION = f"{_version()}/{_FORMAT}"
"""Part of every fingerprint: an answer stored by another version is computed again."""

COMPUTED: Counter[str] = Counter()
"""How many answers of each kind this process computed (not served as stored)."""

_locks: weakref.WeakValueDictionary[tuple[str, str], threading.Lock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class ServedReport:
    """A stored report: its raw form (for Markdown, CSV, text, the figure and webhooks) and
    the trials behind the figure."""

    report: dict[str, Any]
    trials: list[TrialResult]


def similarity_kind(a: str, b: str) -> str:
    """The kind of the stored similarity of ``a`` against ``b``."""
    return "similarity " + json.dumps([a, b])


def _digest(*parts: Any) -> str:
    text = json.dumps([CODE_VERSION, *parts], default=json_default, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _trials_state(comparison_id: str, *, succeeded_only: bool) -> Any:
    """One row of aggregates over the comparison's trials that changes whenever a trial's
    status, epochs, attempts, reuse, start or finish does."""
    where = [Trial.comparison_id == comparison_id]
    if succeeded_only:
        where.append(Trial.status == TrialStatus.SUCCEEDED)
    per_status = [func.sum(case((Trial.status == s.value, 1), else_=0)) for s in TrialStatus]
    return (
        select(
            *per_status,
            func.sum(Trial.epochs_done),
            func.sum(Trial.attempts),
            func.count(Trial.reused_from),
            func.max(Trial.finished_at),
            func.max(Trial.started_at),
        )
        .where(*where)
        .subquery()
    )


def _fresh(
    s: Session, comparison_id: str, kind: str, column: Any, *, succeeded_only: bool
) -> tuple[str, Any]:
    """(the current fingerprint, the stored ``column`` when its fingerprint matches, else
    None), in one query: the comparison's status, name and totals, the trials' aggregates
    and the stored answer's fingerprint."""
    trials = _trials_state(comparison_id, succeeded_only=succeeded_only)
    stored = and_(StoredReport.comparison_id == Comparison.id, StoredReport.kind == kind)
    row = s.execute(
        select(
            Comparison.status,
            Comparison.name,
            Comparison.trials_total,
            Comparison.epochs_total,
            StoredReport.fingerprint,
            column,
            trials,
        )
        .select_from(Comparison)
        .join(trials, true())
        .outerjoin(StoredReport, stored)
        .where(Comparison.id == comparison_id)
    ).first()
    if row is None:
        raise NotFound(f"No comparison {comparison_id!r}.")
    status, name, trials_total, epochs_total, stored_fingerprint, found, *aggregates = row
    if succeeded_only:
        fingerprint = _digest("succeeded", status in TERMINAL, list(aggregates))
    else:
        fingerprint = _digest("all", [status, name, trials_total, epochs_total], list(aggregates))
    return fingerprint, found if stored_fingerprint == fingerprint else None


def _lock(comparison_id: str, kind: str) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get((comparison_id, kind))
        if lock is None:
            lock = _locks[(comparison_id, kind)] = threading.Lock()
        return lock


def _store(
    comparison_id: str, kind: str, fingerprint: str, body: str, served: str | None, seconds: float
) -> None:
    values = {
        "comparison_id": comparison_id,
        "kind": kind,
        "fingerprint": fingerprint,
        "body": body,
        "served": served,
        "seconds": seconds,
    }
    try:
        with session_scope() as s:
            insert = upsert_insert(s, StoredReport).values(**values)
            s.execute(
                insert.on_conflict_do_update(
                    index_elements=["comparison_id", "kind"],
                    set_={k: v for k, v in values.items() if k not in ("comparison_id", "kind")}
                    | {"computed_at": utcnow()},
                )
            )
    except IntegrityError:  # the comparison was deleted meanwhile: nothing to keep
        log.info("answer %s of %s not stored: the comparison is gone", kind, comparison_id)


def _answer(
    comparison_id: str,
    kind: str,
    compute: Callable[[Comparison], tuple[str, str | None]],
    *,
    succeeded_only: bool = False,
    served: bool = False,
    store: bool = True,
) -> str:
    """The answer's body (``served``: its served JSON): the stored one when fresh, else
    computed (no pooled connection held meanwhile) and stored (``store`` false: not stored,
    for a caller that holds a lock on the comparison's row, which the write would wait for)."""
    column = StoredReport.served if served else StoredReport.body
    with session_scope() as s:
        _, found = _fresh(s, comparison_id, kind, column, succeeded_only=succeeded_only)
        comparison = s.get(Comparison, comparison_id) if found is None and not store else None
    if found is not None:
        return str(found)
    if comparison is not None:  # not to be stored: computed at once, by whoever asks
        body, json_text = compute(comparison)
        COMPUTED[kind] += 1
        return json_text if served and json_text is not None else body
    with _lock(comparison_id, kind):
        with session_scope() as s:
            fingerprint, found = _fresh(
                s, comparison_id, kind, column, succeeded_only=succeeded_only
            )
            comparison = s.get(Comparison, comparison_id) if found is None else None
        if found is not None:  # another thread computed it while this one waited
            return str(found)
        assert comparison is not None  # _fresh found its row
        start = time.perf_counter()
        body, json_text = compute(comparison)
        COMPUTED[kind] += 1
        if store:
            _store(comparison_id, kind, fingerprint, body, json_text, time.perf_counter() - start)
        return json_text if served and json_text is not None else body


def _differences(comparison: Comparison) -> tuple[str, str | None]:
    found = load_differences(ShortReads(), comparison)
    return json.dumps(found, default=json_default), None


def _report(comparison: Comparison, *, store: bool = True) -> tuple[str, str | None]:
    with session_scope() as s:  # quick reads; the computation below holds no connection
        trials = load_trial_results(s, comparison.id)
        reuse = reuse_note(s, comparison.id)
    body = _answer(comparison.id, DIFFERENCES, _differences, succeeded_only=True, store=store)
    report = assemble_report(comparison, trials, json.loads(body), reuse)
    with session_scope() as s:  # the robustness and tuning sections: a few small reads
        add_stages(s, comparison, report)
    served = Report.model_validate(report).model_dump_json(by_alias=True)
    stored = {"report": report, "trials": [asdict(t) for t in trials]}
    return json.dumps(stored, default=json_default), served


def _trial(d: Mapping[str, Any]) -> TrialResult:
    curve = tuple(EpochPoint(**p) for p in d["curve"])
    return TrialResult(**{**d, "curve": curve})


def stored_report(comparison_id: str, *, store: bool = True) -> ServedReport:
    """The comparison's report as stored, computed first if its rows changed since (and
    stored, unless ``store`` is false: see ``_answer``)."""

    def compute(comparison: Comparison) -> tuple[str, str | None]:
        return _report(comparison, store=store)

    document = json.loads(_answer(comparison_id, REPORT, compute, store=store))
    return ServedReport(report=document["report"], trials=[_trial(t) for t in document["trials"]])


def stored_report_json(comparison_id: str) -> str:
    """The comparison's report as the api sends it (the ``Report`` schema's JSON), stored."""
    return _answer(comparison_id, REPORT, _report, served=True)


def stored_similarity(comparison_id: str, a: str, b: str) -> dict[str, Any]:
    """``core.report.similarity.similarity`` of ``a`` against ``b``, as stored."""

    def compute(comparison: Comparison) -> tuple[str, str | None]:
        return json.dumps(similarity(ShortReads(), comparison.id, a, b)), None

    out: dict[str, Any] = json.loads(
        _answer(comparison_id, similarity_kind(a, b), compute, succeeded_only=True)
    )
    return out


def refresh(comparison_id: str) -> None:
    """Compute the comparison's report now if its rows changed (the worker, after a trial):
    a failure is logged, never raised, since the report must not fail the trial."""
    try:
        _answer(comparison_id, REPORT, _report)
    except Exception:
        log.exception("report of %s not refreshed; the next read computes it", comparison_id)
