"""The shapes of the service's answers, as the client returns them (``TypedDict``s: at run time
they are the plain dicts the JSON decodes to, so nothing changes for code that indexes them).

The client package imports none of the server's, so these restate the wire shapes of
../API.md's resources; an answer may carry more keys than are named here (fields are added,
never removed). ``Comparison`` and ``Report`` are dict subclasses of ``archbench.notebook``
(they render in Jupyter).
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Analysis",
    "Dataset",
    "Delivery",
    "LayerAnalysis",
    "MetricRow",
    "Page",
    "PredictionRow",
    "Similarity",
    "TrialRow",
]


class Page(TypedDict):
    """One page of a list: ``items`` and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: str | None


class TrialRow(TypedDict):
    """One trial, a (variant, seed): ``GET /v1/comparisons/{id}/trials``."""

    id: str
    comparison_id: str
    variant: str
    seed: int
    data_seed: int
    init_seed: int
    replicate: int
    stage: str
    config: dict[str, Any] | None
    status: str
    attempts: int
    params: int | None
    trainable_params: int | None
    flops: int | None
    epochs_done: int
    started_at: str | None
    finished_at: str | None
    train_seconds: float | None
    test_accuracy: float | None
    test_loss: float | None
    best_val_accuracy: float | None
    worker: str | None
    device: str | None
    epochs_planned: int
    stop_reason: str | None
    inference_ms_per_sample: float | None
    reused_from: str | None
    error: dict[str, Any] | None


class MetricRow(TypedDict, total=False):
    """One epoch of one trial: ``GET /v1/comparisons/{id}/metrics``. Besides the keys named
    here, each other Keras metric of the spec comes by its Keras name (and ``val_`` name)."""

    trial_id: str
    variant: str
    seed: int
    stage: str
    replicate: int
    epoch: int
    loss: float | None
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float | None


class PredictionRow(TypedDict):
    """One (trial, test example): ``GET /v1/comparisons/{id}/predictions``."""

    trial_id: str
    variant: str
    seed: int
    example: int
    label: int
    predicted: int
    p_true: float
    confidence: float


class Similarity(TypedDict, total=False):
    """Layer-by-layer linear CKA: ``GET /v1/comparisons/{id}/similarity``."""

    a: str
    b: str
    layers_a: list[str]
    layers_b: list[str]
    cka: list[list[float | None]]
    within_a: list[list[float | None]]
    within_b: list[list[float | None]]
    probe_size: int
    seeds: Any


class LayerAnalysis(TypedDict, total=False):
    """One layer of an analysis."""

    type: str
    output_shape: list[int | None]
    params: int
    receptive_field: Any


class Analysis(TypedDict, total=False):
    """Static analysis of one variant: ``POST /v1/architectures/analyze``."""

    params: int
    trainable_params: int
    flops: int
    layers: list[LayerAnalysis]


class Delivery(TypedDict):
    """One POST to a comparison's ``callback_url``: ``GET /v1/comparisons/{id}/deliveries``."""

    id: str
    comparison_id: str
    url: str
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    created_at: str
    next_attempt_at: str | None


class Dataset(TypedDict, total=False):
    """A dataset: ``GET /v1/datasets`` (built-in and uploaded), ``POST /v1/datasets``.

    A spec names it by ``name`` (``upload:<id>`` for an upload, or the ``label`` it was
    uploaded with); ``dropped`` (on upload) lists the ``.npz`` members that were not stored.
    """

    name: str
    id: str
    label: str | None
    input_shape: list[int]
    num_classes: int
    samples: int
    description: str
    download: bool
    builtin: bool
    size_bytes: int
    content_hash: str
    created_at: str
    dropped: list[dict[str, str]]
