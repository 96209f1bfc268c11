"""One Settings object, read from ``ARCHBENCH_*`` environment variables and validated at start.

With nothing configured archbench runs embedded: SQLite and a SQLite-backed Celery broker in
``ARCHBENCH_DATA_DIR``. Set ``ARCHBENCH_DATABASE_URL`` and ``ARCHBENCH_BROKER_URL`` for the
distributed deployment (Postgres and Redis).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "normalise_database_url"]


def normalise_database_url(url: str) -> str:
    """Accept Postgres URLs as people write them and pick the installed driver (psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Every knob archbench has. Environment variables use the ``ARCHBENCH_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="ARCHBENCH_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".archbench")
    database_url: str = ""
    broker_url: str = ""
    checkpoint_dir: Path | None = None
    dataset_cache_dir: Path | None = None

    # Auth: off only in the embedded single-user mode. In production, and in any distributed
    # deployment (not the embedded SQLite), the api refuses to start without keys (auth off,
    # or on with no key) unless allow_no_auth is set explicitly (see api.auth).
    auth: bool = False
    allow_no_auth: bool = False
    # The first key, part of bringing a deployment up (docs/deploy.md): at start the api stores
    # this key (``ab_`` and at least 32 characters; or the first line of bootstrap_key_file,
    # a Docker secret) for bootstrap_tenant unless it is stored already (see api.auth).
    bootstrap_key: str = Field("", repr=False)
    bootstrap_key_file: Path | None = None
    bootstrap_tenant: str = "admin"

    # Limits on what one request may ask for.
    max_layers: int = Field(200, ge=1)
    max_params: int = Field(50_000_000, ge=1)
    max_flops: int = Field(20_000_000_000, ge=1)
    max_variants: int = Field(20, ge=1)
    max_seeds: int = Field(30, ge=1)
    max_epochs: int = Field(1000, ge=1)
    max_trial_epochs: int = Field(20_000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_upload_bytes: int = Field(200_000_000, ge=1024)  # POST /v1/datasets, as sent
    max_dataset_bytes: int = Field(1_000_000_000, ge=1024)  # an upload's arrays, uncompressed
    max_active_comparisons_per_tenant: int = Field(20, ge=1)  # queued + running; 429 beyond
    # Activation memory of one training batch (every layer's output, float32, times the batch
    # size): a model with few parameters can still need hundreds of GB (see models.analysis).
    max_activation_bytes: int = Field(8_000_000_000, ge=1)
    # What one trial may need in a worker, in MiB, as counted at submit (models.memory: the
    # runtime, the dataset, the weights with gradients and optimizer state, and the larger of
    # the training step and the analysis' probe pass, calibrated against measured peaks); a
    # spec over it is a 422 at submit. Set it to what a worker child is given.
    max_trial_memory_mb: int = Field(8 * 1024, ge=256)
    # Uploads validated at once by one api process (each streams its arrays in bounded
    # memory); 429 beyond.
    max_concurrent_uploads: int = Field(2, ge=1)

    # Event streams (see api.streams): open ones per tenant and per api process (429 beyond),
    # and the database reads all of them share (pooled connections they may use at once).
    max_streams_per_tenant: int = Field(20, ge=1)
    max_streams: int = Field(500, ge=1)
    stream_db_readers: int = Field(2, ge=1, le=10)
    # The database pool of each process (core.store.db): connections kept, extra ones allowed at
    # once, and seconds a request waits for one before it is a 503 with Retry-After.
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(20, ge=0)
    db_pool_timeout: float = Field(30.0, gt=0)

    # When set, GET /metrics needs `Authorization: Bearer <this token>` (else it is open).
    metrics_token: str = Field("", repr=False)

    # Hot read paths (see api.cache): how far a status poll may lag the database, and how
    # long a found API key stays trusted (a revoked key is refused within it). 0 turns off.
    status_cache_seconds: float = Field(1.0, ge=0, le=60)
    key_cache_seconds: float = Field(5.0, ge=0, le=300)
    # One log line per request (archbench.api.access). Off for a busy api whose proxy already
    # keeps an access log: at thousands of polls a second the lines cost throughput.
    access_log: bool = True

    # Worker behaviour.
    trial_max_seconds: int = Field(24 * 3600, ge=1)
    lease_seconds: int = Field(120, ge=5)
    max_attempts: int = Field(3, ge=1)
    # The memory a worker process is given, in MiB (its container's limit); unset: the
    # cgroup's limit, else the machine's. A child killed by SIGKILL with its peak RSS at
    # least MEMORY_KILL_FRACTION of it was killed for memory: its trial fails at once
    # (worker.memory) instead of being retried into the same kill.
    worker_memory_mb: int | None = Field(None, ge=1)
    sweep_seconds: float = Field(10.0, gt=0)
    # A queued trial sent this long ago, and not claimed while a worker process sits idle, has
    # lost its message (e.g. a claim that met a database outage): the sweeper sends it again,
    # once per this many seconds at most (see core.trials.sweeper).
    resend_queued_seconds: float = Field(300.0, gt=0)
    # Trials of one tenant sent to the broker but not yet claimed, at most: the rest wait
    # unsent in the database and are sent as that tenant's trials are claimed, so another
    # tenant's trial is never queued behind a whole backlog (see core.trials.dispatch). 0: no cap.
    dispatch_per_tenant: int = Field(1, ge=0)
    # Compiled models kept per worker process, so the next trial of the same architecture and
    # compile settings skips retracing (see worker.training; same numbers). 0 turns it off.
    warm_models: int = Field(4, ge=0, le=64)
    # The stored analysis of one trial (for "do they differ?"): its test predictions plus one
    # packed Gram matrix per analysed layer (core.report.cka). A spec whose estimate exceeds it
    # is refused at submit (core.trials.validation.analysis_bytes).
    analysis_max_bytes_per_trial: int = Field(64 * 1024 * 1024, ge=1024)
    # What one tenant may store, in MiB: its trials' analyses (a reused trial's is shared, not
    # counted again) plus its trial and epoch rows. Counted at submit with what the comparison
    # would add; 429 beyond (core.trials.storage).
    tenant_storage_mb: int = Field(10 * 1024, ge=1)

    # Webhooks (a comparison's callback_url): POSTs signed with HMAC-SHA256 under this
    # secret; without a secret the api refuses callback_url (see core.trials.webhooks).
    webhook_secret: str = Field("", repr=False)
    webhook_max_attempts: int = Field(8, ge=1, le=100)
    webhook_backoff_seconds: float = Field(10.0, gt=0)  # doubled after each failed attempt
    webhook_backoff_max_seconds: float = Field(3600.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0)  # each connect, read, write
    # The whole delivery (connect, send, answer) ends by then, however slowly a receiver
    # trickles its answer (see core.trials.posting).
    webhook_delivery_limit_seconds: float = Field(30.0, gt=0, le=600)
    webhook_poll_seconds: float = Field(2.0, gt=0)
    # May callbacks go to loopback/private/link-local addresses (see core.trials.destinations)?
    # Unset: yes in development, no with ARCHBENCH_ENV=production.
    webhook_allow_private: bool | None = None
    public_url: str = "http://127.0.0.1:8000"  # the api as receivers reach it (webhook links)

    # Every worker process writes a heartbeat row this often, busy or idle (see /metrics).
    worker_heartbeat_seconds: float = Field(10.0, gt=0)

    # MLflow: when set, each ended trial is logged as an MLflow run (the mlflow extra): every
    # worker's main process looks for ended, not yet logged trials this often (worker.mlflow_live).
    mlflow_tracking_uri: str = ""
    mlflow_poll_seconds: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'archbench.db').resolve()}"
        self.database_url = normalise_database_url(self.database_url)
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"
        if self.checkpoint_dir is None:
            self.checkpoint_dir = self.data_dir / "checkpoints"
        if self.dataset_cache_dir is None:
            self.dataset_cache_dir = self.data_dir / "datasets"
        if self.env == "production" and self.is_embedded:
            raise ValueError(
                "ARCHBENCH_ENV=production needs ARCHBENCH_DATABASE_URL and ARCHBENCH_BROKER_URL "
                "pointing at a real Postgres and Redis, not the embedded SQLite defaults."
            )
        return self

    def bootstrap_key_value(self) -> str:
        """The bootstrap key: ``bootstrap_key``, else the first line of its file; "" if none."""
        if self.bootstrap_key:
            return self.bootstrap_key.strip()
        if self.bootstrap_key_file is None:
            return ""
        try:
            lines = self.bootstrap_key_file.read_text().splitlines()
        except OSError as exc:
            raise ValueError(
                f"ARCHBENCH_BOOTSTRAP_KEY_FILE={self.bootstrap_key_file} cannot be read: {exc}"
            ) from None
        return lines[0].strip() if lines else ""

    @property
    def is_embedded(self) -> bool:
        """True when running on the embedded SQLite database."""
        return self.database_url.startswith("sqlite")

    @property
    def checkpoints(self) -> Path:
        """The checkpoint folder (never None after validation)."""
        assert self.checkpoint_dir is not None
        return self.checkpoint_dir

    @property
    def dataset_cache(self) -> Path:
        """The folder downloaded datasets are cached in."""
        assert self.dataset_cache_dir is not None
        return self.dataset_cache_dir


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
