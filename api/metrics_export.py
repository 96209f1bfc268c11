"""The long-form metrics table, rendered by the database itself.

20,000 epoch rows must stream in well under a second. Parsing each row's JSON in Python and
encoding it again costs more than the query, so the database builds each row: a JSON object
per row (``json_build_object`` on Postgres, ``json_object`` on SQLite) or plain scalar
columns that ``csv.writer`` writes directly. Python only joins and streams the pieces.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Float, Select, Text, cast, func, select
from sqlalchemy.orm import Session

from core.db import session_scope
from core.tables import EpochMetric, Trial

__all__ = ["metric_columns", "metrics_csv", "metrics_json"]

CHUNK_ROWS = 1000
KEYS = ("trial_id", "variant", "seed", "epoch")


def metric_columns(spec: dict[str, Any]) -> list[str]:
    """The metric columns of a comparison, from its training spec: loss, metrics, val_*."""
    names = ["loss", *spec["training"].get("metrics", ["accuracy"])]
    return [*names, *(f"val_{n}" for n in names)]


def _value(dialect: str, key: str) -> Any:
    if dialect == "postgresql":
        return EpochMetric.values.op("->")(key)
    return func.json_extract(EpochMetric.values, f'$."{key}"')


def _base(columns: Sequence[Any], comparison_id: str, variant: str | None) -> Select[Any]:
    q = (
        select(*columns)
        .join(EpochMetric, EpochMetric.trial_id == Trial.id)
        .where(Trial.comparison_id == comparison_id)
        .order_by(Trial.variant_index, Trial.seed, EpochMetric.epoch)
    )
    return q.where(Trial.variant == variant) if variant else q


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def metrics_json(
    comparison_id: str, value_columns: Sequence[str], variant: str | None
) -> Iterator[bytes]:
    """``{"items": [...], "next_cursor": null}``, one JSON object per epoch row."""
    yield b'{"items": ['
    with session_scope() as s:
        dialect = _dialect(s)
        build = func.json_build_object if dialect == "postgresql" else func.json_object
        args: list[Any] = [
            "trial_id",
            Trial.id,
            "variant",
            Trial.variant,
            "seed",
            Trial.seed,
            "epoch",
            EpochMetric.epoch,
        ]
        for key in value_columns:
            args += [key, _value(dialect, key)]
        args += ["seconds", EpochMetric.seconds]
        q = _base([cast(build(*args), Text)], comparison_id, variant)
        result = s.execute(q.execution_options(yield_per=CHUNK_ROWS))
        first = True
        for part in result.scalars().partitions():
            text = ",".join(part)
            yield (text if first else "," + text).encode()
            first = False
    yield b'], "next_cursor": null}'


def metrics_csv(
    comparison_id: str, value_columns: Sequence[str], variant: str | None
) -> Iterator[bytes]:
    """CSV with one header row; columns named as the JSON fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*KEYS, *value_columns, "seconds"])
    with session_scope() as s:
        dialect = _dialect(s)
        values = [
            cast(_value(dialect, k), Text) if dialect == "postgresql" else _value(dialect, k)
            for k in value_columns
        ]
        q = _base(
            [
                Trial.id,
                Trial.variant,
                Trial.seed,
                EpochMetric.epoch,
                *values,
                cast(EpochMetric.seconds, Float),
            ],
            comparison_id,
            variant,
        )
        for part in s.execute(q.execution_options(yield_per=CHUNK_ROWS)).partitions():
            writer.writerows(("" if v is None or v == "null" else v for v in row) for row in part)
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
