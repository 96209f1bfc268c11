"""What a comparison stores, and the tenant's storage quota.

Each trial stores its analysis (test-set predictions and per-layer Grams, ``worker.analysis``;
a reused trial refers to the trained trial's, ``core.trials.reuse``) and its trial and epoch
rows. The submit counts what the comparison would add (the trials it trains, the rounds it
may still add, every trial's rows) and what the tenant stores already; beyond
``tenant_storage_mb`` it is a 429 that says both. The count runs under the tenant's quota lock
(``core.trials.comparisons.lock_tenant_quota``), in the transaction that inserts.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.datasets import DatasetInfo
from core.errors import ErrorItem, TooManyRequests
from core.report.similarity import analysis_bytes
from core.spec import ComparisonSpec, SeedSchedule, StoredSpec, StoredVariant
from core.store.tables import Comparison, EpochMetric, Trial, TrialLayerGram, TrialPrediction

__all__ = [
    "EPOCH_ROW_BYTES",
    "TRIAL_ROW_BYTES",
    "StorageQuotaExceeded",
    "analysis_errors",
    "analysis_probe_size",
    "check_storage_quota",
    "comparison_bytes",
    "per_trial_analysis_bytes",
    "stored_bytes",
    "test_set_size",
]

TRIAL_ROW_BYTES = 2048
"""What one trial's row counts for (its columns, spec-sized JSON, indexes; measured on
Postgres at under 1.5 KB a trial, tests/integration/test_reuse_storage.py)."""
EPOCH_ROW_BYTES = 512
"""What one epoch's row counts for."""

MIB = 1024 * 1024


class StorageQuotaExceeded(
    TooManyRequests, slug="storage-quota-exceeded", title="Storage quota exceeded"
):
    """The comparison would take the tenant's stored bytes past ``tenant_storage_mb``."""


def test_set_size(spec: ComparisonSpec, dataset: DatasetInfo) -> int:
    """How many test examples each trial gets (worker.datasets.make_split pools every dataset
    and takes ``round(samples x test_split)`` of the possibly subsampled pool)."""
    samples = dataset.samples
    if spec.dataset.max_samples is not None:
        samples = min(samples, spec.dataset.max_samples)
    return round(samples * spec.dataset.test_split)


def analysis_probe_size(spec: ComparisonSpec, dataset: DatasetInfo) -> int:
    """The probe size a comparison gets: as given, or by default 256 capped at the test set
    (only a ``probe_size`` the client chose can be too large)."""
    if "probe_size" in spec.analysis.model_fields_set:
        return spec.analysis.probe_size
    return min(spec.analysis.probe_size, test_set_size(spec, dataset))


def per_trial_analysis_bytes(
    spec: ComparisonSpec, dataset: DatasetInfo, variants: Sequence[StoredVariant]
) -> dict[str, int]:
    """Per variant, the bytes of analysis one of its trials stores."""
    n_test = test_set_size(spec, dataset)
    probe_size = analysis_probe_size(spec, dataset) if spec.analysis.similarity else 0
    return {
        v.name: analysis_bytes(
            n_test=n_test,
            num_classes=dataset.num_classes,
            layers=v.layers,
            predictions=spec.analysis.predictions,
            probe_size=probe_size,
        )
        for v in variants
    }


def analysis_errors(
    spec: ComparisonSpec,
    dataset: DatasetInfo,
    variants: list[StoredVariant],
    settings: Settings,
    body: list[str | int],
) -> list[ErrorItem]:
    """The analysis' submit-time limits: a probe no larger than the test set, and each
    trial's stored analysis (predictions and Gram matrices) within the server's limit."""
    n_test = test_set_size(spec, dataset)
    if spec.analysis.similarity and analysis_probe_size(spec, dataset) > n_test:
        return [
            {
                "loc": [*body, "analysis", "probe_size"],
                "msg": f"probe_size {spec.analysis.probe_size} is larger than the test set "
                f"({n_test} examples); use at most {n_test}",
            }
        ]
    errors: list[ErrorItem] = []
    limit = settings.analysis_max_bytes_per_trial
    needs = per_trial_analysis_bytes(spec, dataset, variants)
    for i, variant in enumerate(variants):
        need = needs[variant.name]
        if need > limit:
            errors.append(
                {
                    "loc": [*body, "analysis"],
                    "msg": f"variant {i} ({variant.name}) would store about {need:,} bytes "
                    f"of analysis per trial, over this server's limit of {limit:,} bytes; "
                    "lower analysis.probe_size or turn predictions or similarity off",
                }
            )
    return errors


def stored_bytes(session: Session, tenant: str, *, excluding: str | None = None) -> int:
    """What ``tenant`` stores now: the analysis rows its trials have (each counted once,
    however many trials refer to it), plus its trial and epoch rows at their counted size;
    ``excluding`` a comparison (the one being created)."""
    mine = Comparison.tenant == tenant
    if excluding is not None:
        mine = mine & (Comparison.id != excluding)
    trials = (
        select(Trial.analysis_key)
        .join(Comparison, Comparison.id == Trial.comparison_id)
        .where(mine)
    )
    pred = TrialPrediction
    predictions = select(
        func.coalesce(
            func.sum(
                func.length(pred.examples)
                + func.length(pred.labels)
                + func.length(pred.predicted)
                + func.length(pred.probs)
            ),
            0,
        )
    ).where(pred.trial_id.in_(trials))
    grams = select(func.coalesce(func.sum(func.length(TrialLayerGram.gram)), 0)).where(
        TrialLayerGram.trial_id.in_(trials)
    )
    n_trials = (
        select(func.count())
        .select_from(Trial)
        .join(Comparison, Comparison.id == Trial.comparison_id)
        .where(mine)
    )
    n_epochs = (
        select(func.count())
        .select_from(EpochMetric)
        .join(Trial, Trial.id == EpochMetric.trial_id)
        .join(Comparison, Comparison.id == Trial.comparison_id)
        .where(mine)
    )
    return (
        int(session.scalar(predictions) or 0)
        + int(session.scalar(grams) or 0)
        + TRIAL_ROW_BYTES * int(session.scalar(n_trials) or 0)
        + EPOCH_ROW_BYTES * int(session.scalar(n_epochs) or 0)
    )


def comparison_bytes(
    spec: StoredSpec, per_trial: dict[str, int], trials: Sequence[Trial], pending: Sequence[Trial]
) -> int:
    """What a comparison being created would add: the analysis of each trial it trains (a
    reused one refers to what is stored), of every trial later rounds may add (adaptive
    seeds), and every trial's rows with one row per planned epoch."""
    train = sum(per_trial.get(t.variant, 0) for t in pending)
    most = spec.seeds.max if isinstance(spec.seeds, SeedSchedule) else len(spec.seeds)
    later = max(0, most - len(spec.initial_seeds))
    train += later * sum(per_trial.get(v.name, 0) for v in spec.variants)
    n_trials = len(trials) + later * len(spec.variants)
    rows = n_trials * (TRIAL_ROW_BYTES + EPOCH_ROW_BYTES * spec.training.epochs)
    return train + rows


def check_storage_quota(session: Session, comparison: Comparison, adds: int, quota_mb: int) -> None:
    """StorageQuotaExceeded when what the comparison's tenant stores (its other comparisons)
    plus ``adds`` bytes is over ``quota_mb`` MiB; the caller holds the tenant's quota lock."""
    quota = quota_mb * MIB
    used = stored_bytes(session, comparison.tenant, excluding=comparison.id)
    if used + adds > quota:
        left = max(0, quota - used)
        raise StorageQuotaExceeded(
            f"this comparison would store about {_mb(adds)} MB; the tenant stores "
            f"{_mb(used)} MB of its {quota_mb:,} MB quota (ARCHBENCH_TENANT_STORAGE_MB), "
            f"{_mb(left)} MB left. Lower analysis.probe_size, turn predictions or similarity "
            "off, or use fewer variants or seeds."
        )


def _mb(n: int) -> str:
    return f"{n / MIB:,.1f}"
