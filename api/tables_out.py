"""Tabular answers (trials, metrics, report) as JSON or CSV, streamed with bounded memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

__all__ = ["stream_table", "wants_csv"]

CHUNK_ROWS = 500


def wants_csv(request: Request, fmt: str | None) -> bool:
    """CSV when ``?format=csv`` or ``Accept: text/csv`` (an explicit format wins)."""
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default)
    return value


def _json_chunks(rows: Iterable[Mapping[str, Any]], next_cursor: str | None) -> Iterator[bytes]:
    dumps = json.JSONEncoder(default=_json_default, allow_nan=False).encode
    yield b'{"items": ['
    buf: list[str] = []
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


def stream_table(
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str],
    csv_out: bool,
    filename: str,
    next_cursor: str | None = None,
) -> StreamingResponse:
    """Stream rows as ``{"items": [...], "next_cursor": ...}`` or as CSV with one header row."""
    if csv_out:
        headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return StreamingResponse(
            _csv_chunks(rows, columns), media_type="text/csv; charset=utf-8", headers=headers
        )
    return StreamingResponse(_json_chunks(rows, next_cursor), media_type="application/json")
