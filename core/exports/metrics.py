"""The long-form metrics table, rendered by the database itself.

20,000 epoch rows must stream in well under 100 ms. Parsing each row's JSON in Python and
encoding it again costs more than the query, and so does handling 20,000 result rows one by
one. On Postgres the database renders each trial's rows, JSON objects or CSV lines, and
joins them into one string per trial (``string_agg`` in epoch order): Python receives one
value per trial, streams it, and holds at most a few trials' text at a time (memory bounded
by the chunk, whatever the comparison's size). On SQLite (the embedded default) it builds a
JSON object per row (``json_object``) or plain scalar columns that ``csv.writer`` writes.

Each read is a short session of its own, one bounded batch (``CHUNK_TRIALS`` trials, at most
``CHUNK_ROWS`` rows of them), resumed after the last trial or (trial, epoch) read
(``core.store.table_reads``): no pooled connection is held while a slow client reads the answer.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    Float,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from core.spec import StoredSpec
from core.store.db import get_engine, session_scope
from core.store.table_reads import TRIAL_ORDER, TrialKey, trials_after
from core.store.tables import EpochMetric, Trial

__all__ = [
    "KEYS",
    "METRIC_KEY_TYPES",
    "metric_columns",
    "metrics_csv",
    "metrics_json",
    "metrics_rows",
]

# What one short session reads (a pooled connection is held for one read, never while the
# client reads the answer): at most CHUNK_TRIALS trials (on Postgres one string each), and of
# them at most CHUNK_ROWS rows where rows come one by one (SQLite, Parquet).
CHUNK_ROWS = 5000
CHUNK_TRIALS = 25
KEYS = ("trial_id", "variant", "seed", "stage", "replicate", "epoch")
METRIC_KEY_TYPES: dict[str, pa.DataType] = {
    "trial_id": pa.string(),
    "variant": pa.string(),
    "seed": pa.int64(),
    "stage": pa.string(),
    "replicate": pa.int64(),
    "epoch": pa.int64(),
}


def metric_columns(spec: StoredSpec) -> list[str]:
    """The metric columns of a comparison, from its training spec: loss, metrics, val_*."""
    names = ["loss", *spec.training.metrics]
    return [*names, *(f"val_{n}" for n in names)]


# SQLite's ``->`` (3.38 and later) returns the stored JSON text of a value.
_SQLITE_ARROW = sqlite3.sqlite_version_info >= (3, 38)


def _sqlite_value(key: str, *, as_json: bool = False) -> Any:
    if as_json and _SQLITE_ARROW:
        # The stored JSON text: json_extract would go through a REAL, which json_object then
        # prints with 15 significant digits (0.30000000000000004 became 0.3); an older SQLite
        # has only json_extract.
        return EpochMetric.values.op("->")(f'$."{key}"')
    return func.json_extract(EpochMetric.values, f'$."{key}"')


def _per_trial(
    render: Callable[[Callable[[str], Any]], Any],
    separator: str,
    value_columns: Sequence[str],
    comparison_id: str,
    variant: str | None,
) -> Select[Any]:
    """One string per trial: its rows rendered by ``render(value)`` and joined in epoch order
    (Postgres). ``value(key)`` is a metric's stored JSON text, NULL when absent: each row's
    JSON is parsed once (``json_to_record``), not once per key."""
    record = (
        func.json_to_record(EpochMetric.values)
        .table_valued(*(column(k, Text) for k in value_columns))
        .render_derived(name="v", with_types=True)
    )
    row = render(lambda key: record.c[key])
    q = (
        select(func.string_agg(row, aggregate_order_by(literal(separator), EpochMetric.epoch)))
        .select_from(Trial)
        .join(EpochMetric, EpochMetric.trial_id == Trial.id)
        .join(record, true())
        .where(Trial.comparison_id == comparison_id)
        .group_by(Trial.variant_index, Trial.seed, Trial.id)
        .order_by(Trial.variant_index, Trial.seed, Trial.id)
    )
    return q.where(Trial.variant == variant) if variant else q


def _csv_field(text: Any) -> Any:
    """``text`` as csv.writer writes it (QUOTE_MINIMAL): quoted only when it must be."""
    quoted = literal('"') + func.replace(text, '"', '""') + literal('"')
    return case((text.regexp_match('[",\r\n]'), quoted), else_=text)


def _pg_csv_row(value_columns: Sequence[str], value: Callable[[str], Any]) -> Any:
    def json_text(key: str) -> Any:
        return func.coalesce(value(key), "")

    parts = [
        cast(Trial.id, Text),
        _csv_field(Trial.variant),
        cast(Trial.seed, Text),
        cast(Trial.stage, Text),
        cast(Trial.replicate, Text),
        cast(EpochMetric.epoch, Text),
        *(json_text(k) for k in value_columns),
        func.coalesce(cast(EpochMetric.seconds, Text), ""),
    ]
    return func.concat_ws(literal_column("','"), *parts)


def _pg_json_row(value_columns: Sequence[str], value: Callable[[str], Any]) -> Any:
    """One compact JSON object per row, concatenated as text: the keys in the order of
    ``json_object`` on SQLite, a quarter faster than ``json_build_object`` (measured: 64 ms
    against 88 ms for 20,000 rows). Metric values are the stored JSON text; strings go
    through ``to_json``; a non-finite ``seconds`` (not JSON) becomes null."""
    seconds = case(
        (
            EpochMetric.seconds.in_([float("inf"), float("-inf"), float("nan")]),
            literal("null"),
        ),
        else_=func.coalesce(cast(EpochMetric.seconds, Text), "null"),
    )
    parts: list[Any] = [
        literal('{"trial_id":'),
        cast(func.to_json(Trial.id), Text),
        literal(',"variant":'),
        cast(func.to_json(Trial.variant), Text),
        literal(',"seed":'),
        cast(Trial.seed, Text),
        literal(',"stage":'),
        cast(func.to_json(Trial.stage), Text),
        literal(',"replicate":'),
        cast(Trial.replicate, Text),
        literal(',"epoch":'),
        cast(EpochMetric.epoch, Text),
    ]
    for key in value_columns:
        parts += [
            literal("," + json.dumps(key) + ":"),
            func.coalesce(value(key), "null"),
        ]
    parts += [literal(',"seconds":'), seconds, literal("}")]
    return func.concat(*parts)


def _dialect() -> str:
    return get_engine().dialect.name


def _trial_window(
    session: Session,
    comparison_id: str,
    variant: str | None,
    after: TrialKey | None,
    *,
    inclusive: bool = False,
    limit: int | None = None,
) -> list[TrialKey]:
    """The next ``limit`` (``CHUNK_TRIALS``) trials of the table, after ``after`` (from it
    when ``inclusive``)."""
    q = select(*TRIAL_ORDER).where(Trial.comparison_id == comparison_id)
    if variant:
        q = q.where(Trial.variant == variant)
    if after is not None:
        q = q.where(trials_after(after, inclusive=inclusive))
    rows = session.execute(q.order_by(*TRIAL_ORDER).limit(limit or CHUNK_TRIALS))
    return [(int(v), int(seed), str(t)) for v, seed, t in rows]


def _pg_batches(
    render: Callable[[Callable[[str], Any]], Any],
    separator: str,
    value_columns: Sequence[str],
    comparison_id: str,
    variant: str | None,
) -> Iterator[list[str]]:
    """Each trial's rows as one string (``_per_trial``), ``CHUNK_TRIALS`` trials per short
    session: the session is closed before the strings are handed on."""
    # Built once, each read binds its trials. On epoch_metrics' own column, which its primary
    # key indexes (on trials.id, Postgres scans the whole of epoch_metrics for each read).
    q = _per_trial(render, separator, value_columns, comparison_id, variant).where(
        EpochMetric.trial_id.in_(bindparam("trials", expanding=True))
    )
    after: TrialKey | None = None
    while True:
        texts: list[str] = []
        with session_scope() as s:
            window = _trial_window(s, comparison_id, variant, after)
            if window:
                texts = list(s.scalars(q, {"trials": [t for _, _, t in window]}))
        if texts:
            yield texts
        if len(window) < CHUNK_TRIALS:
            return
        after = window[-1]


def _row_batches(
    columns: Sequence[Any], key: tuple[int, int], comparison_id: str, variant: str | None
) -> Iterator[list[Any]]:
    """``columns`` of every epoch row in (trial, epoch) order, ``key`` being where the trial
    id and the epoch are among them: one short session per batch of at most ``CHUNK_ROWS``
    rows, read from a window of at most ``CHUNK_TRIALS`` trials and resumed after the last
    (trial, epoch) the previous batch read; the session is closed before the rows are handed
    on.

    The database reads every row of a window to return its first ``CHUNK_ROWS``, so the
    window follows the trials' size (which only costs, never changes the answer): once a
    batch fills up, the next window holds about ``CHUNK_ROWS`` rows again; after a window
    whose rows were all read, it doubles."""
    # Built once, each read binds its trials. On epoch_metrics' own columns, as ranges of its
    # primary key: the window's trials, or the rest of the trial being read and the others.
    chunk = CHUNK_ROWS
    q = (
        select(*columns)
        .select_from(Trial)
        .join(EpochMetric, EpochMetric.trial_id == Trial.id)
        .order_by(*TRIAL_ORDER, EpochMetric.epoch)
        .limit(chunk)
    )
    others = EpochMetric.trial_id.in_(bindparam("trials", expanding=True))
    rest_of_trial = and_(
        EpochMetric.trial_id == bindparam("trial"), EpochMetric.epoch > bindparam("epoch")
    )
    from_start, resumed = q.where(others), q.where(or_(rest_of_trial, others))
    trial: TrialKey | None = None
    epoch: int | None = None  # the last epoch read of ``trial``, which may have more
    width = CHUNK_TRIALS  # trials in the next window
    at_trial, at_epoch = key
    while True:
        rows: list[Any] = []
        with session_scope() as s:
            window = _trial_window(
                s, comparison_id, variant, trial, inclusive=epoch is not None, limit=width
            )
            ids = [t for _, _, t in window]
            if trial is not None and epoch is not None:
                rest = [t for t in ids if t != trial[2]]
                params = {"trial": trial[2], "epoch": epoch, "trials": rest}
                rows = list(s.execute(resumed, params))
            elif window:
                rows = list(s.execute(from_start, {"trials": ids}))
        if rows:
            yield rows
        if len(rows) == chunk:
            touched = ids.index(rows[-1][at_trial]) + 1
            trial, epoch = window[touched - 1], rows[-1][at_epoch]
            # As many trials as this batch needed, and one more (short trials); only the one
            # being read while a trial is longer than a batch.
            width = min(CHUNK_TRIALS, touched + 1) if touched > 1 else 1
        elif len(window) == width:  # every row of the window is read, and more trials follow
            trial, epoch = window[-1], None
            width = min(CHUNK_TRIALS, 2 * width)
        else:
            return


def metrics_json(
    comparison_id: str, value_columns: Sequence[str], variant: str | None
) -> Iterator[bytes]:
    """``{"items": [...], "next_cursor": null}``, one JSON object per epoch row."""
    head = '{"items": ['  # sent with the first read (see ``metrics_csv``)
    parts: Iterator[list[str]]
    if _dialect() == "postgresql":
        parts = _pg_batches(
            functools.partial(_pg_json_row, value_columns),
            ",",
            value_columns,
            comparison_id,
            variant,
        )
    else:
        args: list[Any] = [
            "trial_id",
            Trial.id,
            "variant",
            Trial.variant,
            "seed",
            Trial.seed,
            "stage",
            Trial.stage,
            "replicate",
            Trial.replicate,
            "epoch",
            EpochMetric.epoch,
        ]
        for key in value_columns:
            args += [key, _sqlite_value(key, as_json=True)]
        args += ["seconds", EpochMetric.seconds]
        columns = [cast(func.json_object(*args), Text), Trial.id, EpochMetric.epoch]
        batches = _row_batches(columns, (1, 2), comparison_id, variant)
        parts = ([row[0] for row in rows] for rows in batches)
    first = True
    for part in parts:
        text = ",".join(part)
        yield (head + text if first else "," + text).encode()
        first = False
    yield ((head if first else "") + '], "next_cursor": null}').encode()


def metrics_csv(
    comparison_id: str, value_columns: Sequence[str], variant: str | None
) -> Iterator[bytes]:
    """CSV with one header row; columns named as the JSON fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*KEYS, *value_columns, "seconds"])
    # The header goes out with the first read, not before it: the first chunk is a read (see
    # api.tables_out's ``prefetched``: a pool timeout becomes a 503 before the answer starts).
    if _dialect() == "postgresql":
        for texts in _pg_batches(
            functools.partial(_pg_csv_row, value_columns),
            "\n",
            value_columns,
            comparison_id,
            variant,
        ):
            out.write("\n".join(texts) + "\n")
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    else:
        values = [_sqlite_value(k) for k in value_columns]
        columns = [
            Trial.id,
            Trial.variant,
            Trial.seed,
            Trial.stage,
            Trial.replicate,
            EpochMetric.epoch,
            *values,
            cast(EpochMetric.seconds, Float),
        ]
        for rows in _row_batches(columns, (0, 5), comparison_id, variant):
            writer.writerows(("" if v is None or v == "null" else v for v in row) for row in rows)
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if rest := out.getvalue():  # the header of a table without rows
        yield rest.encode()


def metrics_rows(
    comparison_id: str, value_columns: Sequence[str], variant: str | None
) -> Iterator[dict[str, Any]]:
    """The rows of the long-form table as dicts (for Parquet): the JSON answer's fields, in
    the same order, a missing metric as None; read ``CHUNK_ROWS`` at a time, each batch in a
    short session of its own."""
    columns = [
        Trial.id,
        Trial.variant,
        Trial.seed,
        Trial.stage,
        Trial.replicate,
        EpochMetric.epoch,
        EpochMetric.values,
        EpochMetric.seconds,
    ]
    for rows in _row_batches(columns, (0, 5), comparison_id, variant):
        for trial_id, name, seed, stage, replicate, epoch, values, seconds in rows:
            row: dict[str, Any] = {
                "trial_id": trial_id,
                "variant": name,
                "seed": seed,
                "stage": stage,
                "replicate": replicate,
                "epoch": epoch,
            }
            for key in value_columns:
                row[key] = (values or {}).get(key)
            row["seconds"] = seconds
            yield row
