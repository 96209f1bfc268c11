"""Response shapes (the OpenAPI document's schemas), and how rows become them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from core.seeding import init_seed
from core.status import ComparisonStatus, TrialStage, TrialStatus
from core.store.tables import Comparison, Trial, column_type
from core.timestamps import rfc3339

__all__ = [
    "AnalyzeRequest",
    "ComparisonOut",
    "Page",
    "Progress",
    "SubmitWarning",
    "SubmittedOut",
    "TrialOut",
    "comparison_out",
    "trial_out",
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = None


class Progress(BaseModel):
    """How far a comparison is."""

    trials_total: int
    trials_succeeded: int
    trials_failed: int
    trials_running: int
    trials_queued: int = 0
    trials_cancelled: int = 0
    epochs_total: int
    epochs_done: int
    round: int = Field(
        default=1,
        description="The round of seeds running (adaptive seeds add rounds; a list is one).",
    )
    rounds_max: int = Field(default=1, description="The most rounds the seeds schedule allows.")


class ComparisonOut(BaseModel):
    """A comparison's status, progress and normalised spec."""

    id: str
    name: str
    status: ComparisonStatus = Field(
        description="queued -> running -> succeeded | failed | cancelled (the last three end it)"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Progress
    error: dict[str, Any] | None
    spec: dict[str, Any]
    links: dict[str, str] = Field(default_factory=dict)


class SubmitWarning(BaseModel):
    """Something legal in a submitted comparison that is probably not what was meant."""

    loc: list[str | int] = Field(description='Where in the request, e.g. ["body", "seeds"].')
    msg: str


class SubmittedOut(ComparisonOut):
    """The comparison as submitted (``POST /v1/comparisons``'s 202 answer), with warnings."""

    warnings: list[SubmitWarning] = Field(
        default_factory=list,
        description="Fewer seeds than a test needs, an output without softmax before a loss "
        "that reads probabilities, a long estimated run; empty when none. The comparison is "
        "queued all the same.",
    )


class TrialOut(BaseModel):
    """One (variant, seed) trial."""

    id: str
    comparison_id: str
    variant: str
    seed: int
    data_seed: int = Field(
        description="The seed of the trial's split and data order: its ``seed``, shared by every "
        "variant and replicate at that seed."
    )
    init_seed: int = Field(
        description="The seed of the trial's initialisation (weights, dropout): the seed itself "
        "for replicate 0, another derived from (seed, replicate) for a replicate."
    )
    replicate: int = Field(
        default=0,
        description="0: the variant's trial at this seed (the one scored); k >= 1: its k-th "
        "replicate (analysis.replicates), trained on the same data seed (split and data "
        "order) with another initialisation seed, the control of the differences and CKA.",
    )
    stage: TrialStage = Field(
        default=TrialStage.TEST,
        description='"tuning": a configuration of the tuning stage, scored on the validation '
        'split only (no test scores); "test": trained over the comparison\'s seeds and tested.',
    )
    config: dict[str, Any] | None = Field(
        default=None,
        description="The tuned knobs this trial trained with (a tuning trial's asked "
        "configuration, a final trial's selected one); null: the spec's own settings.",
    )
    status: TrialStatus = Field(
        description="queued -> running -> succeeded | failed | cancelled (running -> queued "
        "when a worker hands it back)"
    )
    attempts: int
    params: int | None
    trainable_params: int | None
    flops: int | None
    epochs_done: int
    started_at: datetime | None
    finished_at: datetime | None
    train_seconds: float | None
    test_accuracy: float | None
    test_loss: float | None
    best_val_accuracy: float | None
    worker: str | None
    device: str | None
    epochs_planned: int
    stop_reason: str | None
    inference_ms_per_sample: float | None
    reused_from: str | None = Field(
        default=None, description="The trial whose identical result this one reuses, if any."
    )
    error: dict[str, Any] | None


# The trials table's columns, in the resource's order (``TrialOut`` less its error), and their
# Parquet types, from the table's own column types (a column not typed here is text).
TRIAL_FIELDS = [name for name in TrialOut.model_fields if name != "error"]
_PARQUET_TYPES = {int: pa.int64(), float: pa.float64(), datetime: pa.timestamp("us", tz="UTC")}
TRIAL_TYPES: dict[str, pa.DataType] = {
    name: _PARQUET_TYPES[kind]
    for name in TRIAL_FIELDS
    if (kind := int if name in ("data_seed", "init_seed") else column_type(Trial, name))
    in _PARQUET_TYPES
}


_CONV128: dict[str, Any] = {
    "name": "conv128",
    "layers": [
        {"type": "Conv2D", "filters": 128, "kernel_size": [3, 3], "activation": "relu"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ],
}


class AnalyzeRequest(BaseModel):
    """Body of ``POST /v1/architectures/analyze``: a variant, and where its input shape comes
    from (the dataset's, or the variant's own ``input_shape``). Each example is accepted as
    it stands."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"variant": _CONV128, "dataset": {"name": "mnist_5k"}},
                {"variant": {**_CONV128, "input_shape": [28, 28, 1]}},
            ]
        }
    )

    variant: dict[str, Any] = Field(
        description="A variant as in a comparison; give `input_shape` in it, or a `dataset`.",
        examples=[{**_CONV128, "input_shape": [28, 28, 1]}],
    )
    dataset: dict[str, Any] | None = Field(
        default=None,
        description="The dataset whose input shape and classes the variant is checked against.",
        examples=[{"name": "mnist_5k"}],
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        le=65536,
        description="For the activation memory per batch (and its limit), as training uses it.",
    )


def comparison_out(c: Comparison, counts: dict[str, int], base: str = "") -> ComparisonOut:
    """A comparison row and its trial counts as the API resource."""
    path = f"{base}/v1/comparisons/{c.id}"
    round_now, rounds_max = c.spec.round_progress(c.trials_total)
    return ComparisonOut(
        id=c.id,
        name=c.name,
        status=c.status,
        created_at=c.created_at,
        started_at=c.started_at,
        finished_at=c.finished_at,
        progress=Progress(
            trials_total=c.trials_total,
            trials_succeeded=counts.get(TrialStatus.SUCCEEDED, 0),
            trials_failed=counts.get(TrialStatus.FAILED, 0),
            trials_running=counts.get(TrialStatus.RUNNING, 0),
            trials_queued=counts.get(TrialStatus.QUEUED, 0),
            trials_cancelled=counts.get(TrialStatus.CANCELLED, 0),
            epochs_total=c.epochs_total,
            epochs_done=counts.get("epochs_done", 0),
            round=round_now,
            rounds_max=rounds_max,
        ),
        error=c.error,
        spec=c.spec.dump(),
        links={
            "self": path,
            "trials": f"{path}/trials",
            "metrics": f"{path}/metrics",
            "report": f"{path}/report",
            "report_png": f"{path}/report.png",
            "events": f"{path}/events",
        },
    )


def trial_out(t: Trial) -> dict[str, Any]:
    """A trial row as the API resource (a plain dict, for streaming)."""
    seeds = {"data_seed": int(t.seed), "init_seed": init_seed(int(t.seed), int(t.replicate or 0))}
    out: dict[str, Any] = {f: seeds[f] if f in seeds else getattr(t, f) for f in TRIAL_FIELDS}
    out["error"] = t.error
    for key in ("started_at", "finished_at"):
        if out[key] is not None:
            out[key] = rfc3339(out[key])
    return out
