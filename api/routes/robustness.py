"""More robust? ``/robustness`` (JSON, CSV, Parquet) and ``/robustness.png``.

``/robustness`` serves every score behind the report's "More robust?" section: per succeeded
trial one ``clean`` row (severity 0) and one row per (corruption, severity) it was scored on
(core.report.load.robustness_rows), as a table like every other (api.tables_out).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import ComparisonOnlyDep
from api.tables_out import TABLE_RESPONSES, FormatQuery, stream_table, table_format
from core.report.load import ROBUSTNESS_COLUMNS, robustness_rows
from core.report.robustness_plot import render_robustness_png
from core.store.db import session_scope

__all__ = ["router"]

router = APIRouter(prefix="/v1/comparisons", tags=["robustness"])

PARQUET_TYPES = {
    "seed": pa.int64(),
    "severity": pa.int64(),
    "accuracy": pa.float64(),
    "loss": pa.float64(),
    "n": pa.int64(),
}


@router.get("/{comparison_id}/robustness", responses=TABLE_RESPONSES)
def robustness(
    request: Request, comparison: ComparisonOnlyDep, fmt: FormatQuery = None
) -> StreamingResponse:
    """One row per (succeeded trial, corruption, severity): ``trial_id``, ``variant``,
    ``seed``, ``corruption``, ``severity`` (1 to 5), ``accuracy``, ``loss`` (mean
    cross-entropy; null when the model's outputs are not probabilities) and ``n`` (test
    examples); and per trial one ``clean`` row of severity 0 with its clean test scores.
    Empty when the comparison asked for no robustness."""
    with session_scope() as session:  # read, then answer with no connection held
        rows = robustness_rows(session, comparison.id)
    return stream_table(
        rows,
        columns=ROBUSTNESS_COLUMNS,
        fmt=table_format(request, fmt),
        types=PARQUET_TYPES,
        filename=f"robustness-{comparison.id}",
    )


@router.get(
    "/{comparison_id}/robustness.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def robustness_png(comparison: ComparisonOnlyDep) -> Response:
    """Accuracy against severity (0: clean), one panel per corruption, one line per variant:
    the mean over seeds with its 95% t interval."""
    scores: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    with session_scope() as session:  # read, then draw with no connection held
        rows = robustness_rows(session, comparison.id)
    for r in rows:
        scores[(r["variant"], r["corruption"], r["severity"])].append(float(r["accuracy"]))
    asked = comparison.spec.robustness
    corruptions = list(asked.corruptions or ()) if asked is not None else []
    png = render_robustness_png(
        scores, order=comparison.spec.variant_names, corruptions=corruptions
    )
    return Response(png, media_type="image/png")
