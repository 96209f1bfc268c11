"""Do they differ? ``/predictions`` (JSON, CSV, Parquet), ``/similarity`` and ``/similarity.png``.

``/predictions`` is streamed one trial at a time (one trial's arrays in memory, each read in a
short session of its own), with an optional ``variant`` filter, as JSON, CSV or Parquet
(api.tables_out, like every table). ``/similarity`` and its figure are served as stored
(``core.report.stored``), computed once per pair and state of the trials.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.deps import ComparisonOnlyDep
from api.tables_out import TABLE_RESPONSES, FormatQuery, stream_table, table_format
from core.errors import InvalidInput
from core.report.similarity import (
    PREDICTION_COLUMNS,
    PROBABILITIES_COLUMN,
    prediction_rows,
)
from core.report.similarity_plot import render_similarity_png
from core.report.stored import stored_similarity
from core.spec import NO_NUL
from core.store.tables import Comparison

__all__ = ["router"]

router = APIRouter(prefix="/v1/comparisons", tags=["differences"])

PARQUET_TYPES = {
    "seed": pa.int64(),
    "example": pa.int64(),
    "label": pa.int64(),
    "predicted": pa.int64(),
    "p_true": pa.float32(),
    "confidence": pa.float32(),
    PROBABILITIES_COLUMN: pa.list_(pa.float32()),
}
ProbabilitiesQuery = Annotated[
    Literal["top", "full"] | None,
    Query(
        alias="probabilities",
        description="top (default): p_true and confidence; full: also the whole vector of "
        "class probabilities, one list a row",
    ),
]
VariantQuery = Annotated[str | None, Query(max_length=64), NO_NUL]


@router.get(
    "/{comparison_id}/predictions",
    responses=TABLE_RESPONSES,
)
def predictions(
    request: Request,
    comparison: ComparisonOnlyDep,
    fmt: FormatQuery = None,
    variant: VariantQuery = None,
    probabilities: ProbabilitiesQuery = None,
) -> StreamingResponse:
    """One row per (trial, test example) of the succeeded trials that kept predictions:
    ``trial_id``, ``variant``, ``seed``, ``example`` (the dataset id, the same across variants
    and seeds), ``label``, ``predicted``, ``p_true`` (the probability given to the label) and
    ``confidence`` (the top class's probability), both as stored (16-bit floats, unrounded):
    the report's ECE and NLL are recomputed from them exactly. ``?probabilities=full`` adds
    ``probabilities``, the whole vector (a JSON list in CSV)."""
    if variant is not None:
        _check_variant(comparison, variant, "variant")
    full = probabilities == "full"
    return stream_table(
        prediction_rows(comparison.id, variant, full=full),
        columns=[*PREDICTION_COLUMNS, *([PROBABILITIES_COLUMN] if full else [])],
        fmt=table_format(request, fmt),
        types=PARQUET_TYPES,
        filename=f"predictions-{comparison.id}",
    )


def _names(comparison: Comparison) -> list[str]:
    return comparison.spec.variant_names


def _check_variant(comparison: Comparison, name: str, field: str) -> None:
    names = _names(comparison)
    if name not in names:
        raise InvalidInput(
            [{"loc": ["query", field], "msg": f"no variant {name!r} in this comparison ({names})"}]
        )


def _pair(comparison: Comparison, a: str | None, b: str | None) -> tuple[str, str]:
    """The variants asked for; by default the baseline (or the first variant) and the next."""
    names = _names(comparison)
    if a is not None:
        _check_variant(comparison, a, "a")
    if b is not None:
        _check_variant(comparison, b, "b")
    baseline = comparison.spec.baseline
    first = a or (baseline if baseline in names else names[0])
    second = b or next((n for n in names if n != first), first)
    return first, second


@router.get("/{comparison_id}/similarity")
def similarity_json(
    comparison: ComparisonOnlyDep,
    a: VariantQuery = None,
    b: VariantQuery = None,
) -> JSONResponse:
    """Layer-by-layer linear CKA of ``a`` against ``b`` (rows: a's layers, columns: b's),
    averaged over the seeds both have; ``within_a`` and ``within_b`` are each variant against
    itself, the baseline to read ``cka`` against: with ``analysis.replicates`` its trial
    against its replicate at the same data seed (``control``: "replicates"), else every pair
    of its seeds ("seeds"). Null cells: no data."""
    first, second = _pair(comparison, a, b)
    return JSONResponse(stored_similarity(comparison.id, first, second))


@router.get(
    "/{comparison_id}/similarity.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def similarity_png(
    comparison: ComparisonOnlyDep,
    a: VariantQuery = None,
    b: VariantQuery = None,
) -> Response:
    """Three heatmaps with layer names: a against b, a against a', b against b'."""
    first, second = _pair(comparison, a, b)
    sim = stored_similarity(comparison.id, first, second)
    return Response(render_similarity_png(sim, title=comparison.name), media_type="image/png")
