"""Tabular answers (trials, metrics, predictions) as JSON, CSV or Parquet, streamed with
bounded memory.

The format is negotiated the same way for every table (``table_format``): an explicit
``?format=`` wins; otherwise the ``Accept`` header (``text/csv`` or
``application/vnd.apache.parquet``); otherwise JSON. Parquet is written with pyarrow, one row
group per ``CHUNK_ROWS`` rows, each sent as soon as it is written, so pandas, polars and
DuckDB read the answer straight from the URL and the server never holds the whole table.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Query, Request
from fastapi.responses import StreamingResponse

from core.timestamps import rfc3339

__all__ = [
    "PARQUET_MEDIA_TYPE",
    "TABLE_MEDIA_TYPES",
    "FormatQuery",
    "TableFormat",
    "parquet_chunks",
    "prefetched",
    "rfc3339",
    "stream_table",
    "table_format",
    "wants_csv",
]

CHUNK_ROWS = 500
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
TableFormat = Literal["json", "csv", "parquet"]

FormatQuery = Annotated[
    TableFormat | None,
    Query(
        alias="format",
        description="json (default), csv or parquet; without it, the Accept header decides "
        "(text/csv, application/vnd.apache.parquet)",
    ),
]
"""The ``?format=`` of every table endpoint (``table_format`` reads it, then ``Accept``)."""
# Media types a client may send in Accept, per format (the first one is what we answer with).
TABLE_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "csv": ("text/csv",),
    "parquet": (PARQUET_MEDIA_TYPE, "application/x-parquet", "application/parquet"),
}
# The ``responses`` entry of a table endpoint, for the OpenAPI document.
TABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/csv": {}, PARQUET_MEDIA_TYPE: {}}},
}


def table_format(request: Request, fmt: str | None) -> TableFormat:
    """``?format=`` when given, else the first table media type named in ``Accept``, else
    JSON. The same rule for every table endpoint."""
    if fmt is not None:
        if fmt in ("csv", "parquet"):
            return fmt  # type: ignore[return-value]
        return "json"
    accept = request.headers.get("accept", "").lower()
    for kind, media_types in TABLE_MEDIA_TYPES.items():
        if any(m in accept for m in media_types):
            return kind  # type: ignore[return-value]
    return "json"


def wants_csv(request: Request, fmt: str | None) -> bool:
    """CSV when ``?format=csv`` or ``Accept: text/csv`` (an explicit format wins)."""
    return table_format(request, fmt) == "csv"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default)
    return value


def _json_chunks(rows: Iterable[Mapping[str, Any]], next_cursor: str | None) -> Iterator[bytes]:
    dumps = json.JSONEncoder(default=_json_default, allow_nan=False).encode
    # The opening goes out with the first rows (not alone), so the first chunk is a read.
    buf: list[str] = ['{"items": [']
    first = True
    for row in rows:
        buf.append(("" if first else ",") + dumps(row))
        first = False
        if len(buf) >= CHUNK_ROWS:
            yield "".join(buf).encode()
            buf.clear()
    tail = "".join(buf) + '], "next_cursor": ' + dumps(next_cursor) + "}"
    yield tail.encode()


def _csv_chunks(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, start=1):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if n % CHUNK_ROWS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


class _Drain(io.RawIOBase):
    """A write-only sink for pyarrow that hands back what was written since the last drain."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _parquet_value(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(kind):
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if isinstance(value, dict | list):
            return json.dumps(value, default=_json_default)
        return value if isinstance(value, str) else str(value)
    if pa.types.is_floating(kind) and isinstance(value, int | float):
        return float(value)
    return value


def parquet_schema(
    columns: Sequence[str], types: Mapping[str, pa.DataType] | None = None
) -> pa.Schema:
    """A column per name, typed from ``types``; a column without a type is text (a dict or
    list cell is written as its JSON, as in CSV)."""
    types = types or {}
    return pa.schema([pa.field(c, types.get(c, pa.string())) for c in columns])


def parquet_chunks(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    types: Mapping[str, pa.DataType] | None = None,
) -> Iterator[bytes]:
    """A Parquet file of ``rows``: one row group per ``CHUNK_ROWS`` rows, each yielded as soon
    as pyarrow has written it (the footer comes last)."""
    schema = parquet_schema(columns, types)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def batch(buf: list[Mapping[str, Any]]) -> pa.RecordBatch:
        arrays = [
            pa.array([_parquet_value(r.get(f.name), f.type) for r in buf], type=f.type)
            for f in schema
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    buf: list[Mapping[str, Any]] = []
    for row in rows:
        buf.append(row)
        if len(buf) >= CHUNK_ROWS:
            writer.write_batch(batch(buf))
            buf.clear()
            yield sink.drain()
    if buf:
        writer.write_batch(batch(buf))
    writer.close()
    yield sink.drain()


def prefetched(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks`` with its first chunk already read, here, before the response starts: the
    read that takes a pooled connection happens while an error can still be an answer (a pool
    timeout is a 503 problem+json with Retry-After, not a body cut off after a 200)."""
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), chunks)


def stream_table(
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str],
    filename: str,
    csv_out: bool = False,
    fmt: TableFormat | None = None,
    types: Mapping[str, pa.DataType] | None = None,
    next_cursor: str | None = None,
) -> StreamingResponse:
    """Stream rows as ``{"items": [...], "next_cursor": ...}``, as CSV with one header row, or
    as Parquet typed by ``types`` (``fmt`` from ``table_format``; ``csv_out`` is the older
    spelling of ``fmt="csv"``). A page's next cursor travels in ``X-Next-Cursor`` for CSV and
    Parquet."""
    kind: TableFormat = fmt or ("csv" if csv_out else "json")
    if kind == "json":
        return StreamingResponse(
            prefetched(_json_chunks(rows, next_cursor)), media_type="application/json"
        )
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{kind}"'}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    if kind == "csv":
        return StreamingResponse(
            prefetched(_csv_chunks(rows, columns)),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    return StreamingResponse(
        prefetched(parquet_chunks(rows, columns, types)),
        media_type=PARQUET_MEDIA_TYPE,
        headers=headers,
    )
