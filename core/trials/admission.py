"""Memory that is admitted is memory that is counted: at submit, each variant's trial is
counted as a worker will hold it (``models.memory.trial_memory``: the runtime, the dataset as
float32, the weights with gradients and optimizer state, and the larger of the training step
and the analysis' probe pass), and a spec over the limit is a 422 located at the part that
dominates, before anything is stored or queued. The limit is ``max_trial_memory_mb``: the api's
own setting (it does not know the workers' ``worker_memory_mb``; an operator sets it to what a
worker child is given).
"""

from __future__ import annotations

from core.config import Settings
from core.datasets import DatasetInfo
from core.errors import ErrorItem
from core.spec import ComparisonSpec, StoredVariant
from core.trials.storage import analysis_probe_size
from models.analysis import Analysis
from models.memory import TRAINING_FACTOR, TrialMemory, dataset_bytes, trial_memory

__all__ = ["memory_errors", "memory_limit_mb", "trial_need"]

MIB = 1024 * 1024


def memory_limit_mb(settings: Settings) -> int:
    """The most one trial may need, in MiB."""
    return settings.max_trial_memory_mb


def trial_need(
    spec: ComparisonSpec, dataset: DatasetInfo, variant: StoredVariant, analysis: Analysis
) -> tuple[TrialMemory, int]:
    """What one trial of ``variant`` needs, and the batch size it trains with."""
    batch = spec.training.with_override(variant.training).batch_size
    pool = dataset.samples
    if spec.dataset.max_samples is not None:
        pool = min(pool, spec.dataset.max_samples)
    probe = analysis_probe_size(spec, dataset) if spec.analysis.similarity else 0
    need = trial_memory(
        analysis,
        batch_size=batch,
        probe_size=probe,
        dataset=dataset_bytes(dataset.samples, pool, analysis.input_shape),
    )
    return need, batch


def memory_errors(
    spec: ComparisonSpec,
    dataset: DatasetInfo,
    variants: list[StoredVariant],
    analyses: dict[str, Analysis],
    settings: Settings,
    body: list[str | int],
) -> list[ErrorItem]:
    """One located error per variant whose trial would need more than the limit."""
    limit = memory_limit_mb(settings)
    errors: list[ErrorItem] = []
    for i, variant in enumerate(variants):
        analysis = analyses[variant.name]
        need, batch = trial_need(spec, dataset, variant, analysis)
        if need.total <= limit * MIB:
            continue
        part = need.largest()
        errors.append(
            {
                "loc": _where(part, body, i, analysis),
                "msg": f"variant {i} ({variant.name}): a trial would need about "
                f"{_mib(need.total)} MiB in a worker, over this server's limit of {limit:,} MiB "
                "(ARCHBENCH_MAX_TRIAL_MEMORY_MB). "
                f"{_parts(need, batch)} {_advice(part)}",
            }
        )
    return errors


def _where(part: str, body: list[str | int], i: int, analysis: Analysis) -> list[str | int]:
    if part == "probe_pass":
        return [*body, "analysis", "probe_size"]
    if part == "dataset":
        return [*body, "dataset", "max_samples"]
    acts = analysis.activations
    if part == "training_step" and acts is not None and acts.largest_layer_index is not None:
        return [*body, "variants", i, "layers", acts.largest_layer_index]
    return [*body, "variants", i, "layers"]


def _parts(need: TrialMemory, batch: int) -> str:
    return (
        f"The largest part is the {need.largest().replace('_', ' ')}: training step "
        f"{_mib(need.training_step)} MiB (about {TRAINING_FACTOR:g}x the layer outputs of a "
        f"batch of {batch}), probe pass {_mib(need.probe_pass)} MiB, weights with gradients "
        f"and optimizer state {_mib(need.weights)} MiB, dataset {_mib(need.dataset)} MiB, "
        f"runtime {_mib(need.runtime)} MiB."
    )


def _advice(part: str) -> str:
    return {
        "training_step": "Lower training.batch_size or the largest layer outputs.",
        "probe_pass": "Lower analysis.probe_size or turn similarity off.",
        "weights": "Use fewer parameters.",
        "dataset": "Lower dataset.max_samples.",
    }[part]


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f}"
