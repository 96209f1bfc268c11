"""Database tables (SQLAlchemy 2.0). In archbench "models" are neural networks; these are tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.errors import Problem
from core.spec import StoredSpec
from core.status import ACTIVE, TERMINAL, ComparisonStatus, TrialStage, TrialStatus
from models.analysis import Analysis

__all__ = [
    "ACTIVE_TRIAL_STATES",
    "RESULT_COLUMNS",
    "TERMINAL_STATES",
    "TRAINED_COLUMNS",
    "ApiKey",
    "Base",
    "Comparison",
    "Dataset",
    "EpochMetric",
    "MlflowRun",
    "StoredReport",
    "Trial",
    "TrialCorruptionScore",
    "TrialLayerGram",
    "TrialPrediction",
    "WebhookDelivery",
    "WorkerHeartbeat",
    "column_type",
    "new_id",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The names code written before core.status used; new code imports core.status.
TERMINAL_STATES = TERMINAL
ACTIVE_TRIAL_STATES = ACTIVE


def one_of(column: str, words: type[StrEnum]) -> CheckConstraint:
    """A CHECK that ``column`` holds one of ``words`` (named ``ck_<table>_<column>``)."""
    listed = ", ".join(f"'{w.value}'" for w in words)
    return CheckConstraint(f"{column} IN ({listed})", name=column)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random UUID as a string."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SpecJSON(TypeDecorator[StoredSpec]):
    """A comparison's spec: JSON in the database, a ``core.spec.StoredSpec`` in Python. It is
    parsed here, once per row read, and every layer reads the typed model; JSON paths in SQL
    (``Comparison.spec["callback_url"]``) work as on plain JSON."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: StoredSpec | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, StoredSpec):
            raise TypeError(
                f"Comparison.spec takes a core.spec.StoredSpec, not {type(value).__name__} "
                "(StoredSpec.load(json) parses stored JSON)"
            )
        return value.dump()

    def process_result_value(self, value: Any, dialect: Dialect) -> StoredSpec | None:
        return None if value is None else StoredSpec.load(value)


_ANALYSES = TypeAdapter(dict[str, Analysis])


class AnalysesJSON(TypeDecorator[dict[str, Analysis]]):
    """A comparison's variant analyses (shapes, parameters, FLOPs, activation memory, by
    variant name): JSON in the database, ``models.analysis.Analysis`` objects in Python.
    Analyses stored before the activation memory existed load with ``activations`` None."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: dict[str, Analysis] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return {name: analysis.to_dict() for name, analysis in value.items()}

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Analysis] | None:
        return None if value is None else _ANALYSES.validate_python(value)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints predictably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, int: Integer}


class Comparison(Base):
    """One submitted comparison: several variants times several seeds."""

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=ComparisonStatus.QUEUED)
    spec: Mapped[StoredSpec] = mapped_column(SpecJSON)
    analyses: Mapped[dict[str, Analysis]] = mapped_column(AnalysesJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[Problem | None] = mapped_column(JSON)
    trials_total: Mapped[int] = mapped_column(default=0)
    epochs_total: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_comparisons_tenant_created", "tenant", "created_at", "id"),
        UniqueConstraint("tenant", "idempotency_key"),
        one_of("status", ComparisonStatus),
    )


class Trial(Base):
    """One (variant, seed) training run of a comparison."""

    __tablename__ = "trials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    comparison_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    variant: Mapped[str] = mapped_column(String(64))
    variant_index: Mapped[int]
    seed: Mapped[int] = mapped_column(BigInteger)
    # The stage (tuning trials are scored on validation only), the tuned knobs this trial ran
    # with (None: the spec's own), and the replicate: 0 for the trial itself, k >= 1 for the
    # k-th retraining of the variant on the same data seed with another initialisation seed.
    stage: Mapped[str] = mapped_column(
        String(16), default=TrialStage.TEST, server_default=TrialStage.TEST.value
    )
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    replicate: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    params: Mapped[int | None] = mapped_column(BigInteger)
    trainable_params: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    epochs_planned: Mapped[int] = mapped_column(default=0)
    epochs_done: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    train_seconds: Mapped[float | None] = mapped_column(Float)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    test_loss: Mapped[float | None] = mapped_column(Float)
    best_val_accuracy: Mapped[float | None] = mapped_column(Float)
    test_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    inference_ms_per_sample: Mapped[float | None] = mapped_column(Float)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[Problem | None] = mapped_column(JSON)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    # Content hash of everything that determines the result (normalised architecture,
    # dataset and split, training settings, seed, library versions): identical work is reused.
    trial_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    reused_from: Mapped[str | None] = mapped_column(String(36))
    # The trial whose stored analysis (``TrialPrediction``, ``TrialLayerGram``) this one's
    # result has: None for a trial that stored its own, the trained trial's id for a reused one
    # (a reference, never a copy; ``analysis_key`` reads either).
    analysis_id: Mapped[str | None] = mapped_column(String(36), index=True)

    @hybrid_property
    def analysis_key(self) -> str:
        """The ``trial_id`` of this trial's stored analysis rows (its own id, or the trained
        trial's that it reuses)."""
        return self.analysis_id or self.id

    @analysis_key.inplace.expression
    @classmethod
    def _analysis_key_expression(cls) -> ColumnElement[str]:
        return func.coalesce(cls.analysis_id, cls.id)

    __table_args__ = (
        UniqueConstraint("comparison_id", "variant", "stage", "seed", "replicate"),
        Index("ix_trials_status_lease", "status", "lease_expires_at"),
        one_of("status", TrialStatus),
        one_of("stage", TrialStage),
    )


RESULT_COLUMNS: dict[str, str] = {
    "params": "training",
    "trainable_params": "training",
    "flops": "submit",
    "epochs_done": "epochs",
    "train_seconds": "training",
    "test_accuracy": "training",
    "test_loss": "training",
    "best_val_accuracy": "training",
    "test_metrics": "training",
    "inference_ms_per_sample": "training",
    "stop_reason": "training",
    "worker": "claim",
    "device": "training",
    "started_at": "claim",
    "finished_at": "finish",
}
"""The trial's result columns, declared once (each a column of ``Trial``), with what writes
each: the submit (the counted FLOPs), the claim, each stored epoch, the end of the trial, or
training itself (``TRAINED_COLUMNS``: worker.training's ``TrainResult`` has a field of each
name, and the worker stores them through ``finish_trial``). Reuse copies all of them; the
MLflow export, the downloads' column types and ``finish_trial``'s arguments derive from
this declaration."""

TRAINED_COLUMNS: tuple[str, ...] = tuple(
    name for name, writer in RESULT_COLUMNS.items() if writer == "training"
)


def column_type(table: type[Base], name: str) -> type:
    """The Python type of one of ``table``'s columns: int, float, str, datetime (``object``
    for JSON)."""
    sql_type = table.__table__.c[name].type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    python_type: type = sql_type.python_type
    return python_type


class EpochMetric(Base):
    """One finished epoch of one trial; (trial_id, epoch) is unique, so rows are upserted."""

    __tablename__ = "epoch_metrics"

    trial_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key of a tenant; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    """An uploaded dataset (``upload:<id>``), stored under the data folder by content hash."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1000))
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    num_classes: Mapped[int]
    samples: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One attempt to POST a comparison's outcome to its ``callback_url``."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    comparison_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    attempt: Mapped[int]
    event: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(2000))
    delivered: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]


class WorkerHeartbeat(Base):
    """A worker process's last sign of life, busy or idle: its main process rewrites its row
    every ``worker_heartbeat_seconds`` (see worker.heartbeat) and deletes it on a clean stop."""

    __tablename__ = "worker_heartbeats"

    hostname: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # the Celery node name, e.g. gpu0@host
    concurrency: Mapped[int]
    # The pids of its pool's child processes: a trial's ``worker`` is host:child pid.
    processes: Mapped[list[int]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class MlflowRun(Base):
    """A trial that live MLflow logging (``ARCHBENCH_MLFLOW_TRACKING_URI``) has logged, so
    each ended trial is logged once, whichever way it ended (see worker.mlflow_live)."""

    __tablename__ = "mlflow_runs"

    trial_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[str | None] = mapped_column(String(64))
    tracking_uri: Mapped[str] = mapped_column(String(1000))
    logged_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrialPrediction(Base):
    """A trial's test-set predictions, written with its result (worker.analysis): one row per
    trial, arrays as little-endian bytes. ``examples`` (int64) are the dataset ids of the test
    rows, ``labels`` and ``predicted`` int32, ``probs`` the class probabilities as float16
    (n x num_classes). ``trial_id`` is the trial that computed them; trials that reuse it point
    at them (``Trial.analysis_key``), so the row outlives its trial while another refers to
    it, and is removed with the last reference (``core.trials.reuse.collect_unreferenced``)."""

    __tablename__ = "trial_predictions"

    trial_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    n: Mapped[int]
    num_classes: Mapped[int]
    examples: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[bytes] = mapped_column(LargeBinary)
    predicted: Mapped[bytes] = mapped_column(LargeBinary)
    probs: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrialLayerGram(Base):
    """One layer's centered Gram matrix over the comparison's probe set, packed by
    ``core.report.cka.pack_gram`` (float16 upper triangle, n (n + 1) bytes): what linear CKA needs.
    ``probe_hash`` names the probe examples, so only Grams over the same examples are
    compared. Referenced and removed like ``TrialPrediction``'s row."""

    __tablename__ = "trial_layer_grams"

    trial_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    layer_index: Mapped[int] = mapped_column(primary_key=True)
    layer: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    probe_size: Mapped[int]
    probe_hash: Mapped[str] = mapped_column(String(64))
    gram: Mapped[bytes] = mapped_column(LargeBinary)


class TrialCorruptionScore(Base):
    """A trial's scores on one corrupted copy of its test set (``core.data.corruptions``):
    accuracy and mean cross-entropy over ``n`` examples, written with its result
    (worker.robustness). Removed with the trial (ON DELETE CASCADE)."""

    __tablename__ = "trial_corruption_scores"

    trial_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    corruption: Mapped[str] = mapped_column(String(32), primary_key=True)
    severity: Mapped[int] = mapped_column(primary_key=True)
    accuracy: Mapped[float] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int]


class StoredReport(Base):
    """An answer computed once from a comparison's rows and served as stored
    (``core.report.stored``): the report, the prediction differences, a pair's similarity.
    ``fingerprint`` names the state of the rows it was computed from (a hash of the trial
    counts, statuses, epochs and finish times, the comparison's status and the code's version):
    a read whose current fingerprint differs computes it again. ``body`` is the answer as
    JSON text (the report's raw form and the trials behind its figure); ``served``, where the
    answer has a schema, the exact JSON the api sends. Removed with the comparison."""

    __tablename__ = "reports"

    comparison_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    served: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(Float)
