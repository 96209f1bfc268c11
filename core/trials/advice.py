"""Warnings at submit: what is legal but probably not what the client meant.

A comparison that passed validation may still be unable to answer its question (fewer seeds
than any test needs), train against a loss its output does not fit (no softmax before a loss
that reads probabilities), or take far longer than its author guessed. Each warning is located
like an error (``{"loc": [...], "msg": ...}``) and comes in the 202 answer's ``warnings``; the
comparison is queued all the same.
"""

from __future__ import annotations

from core.datasets import DatasetInfo
from core.errors import ErrorItem
from core.report.stats import MIN_SEEDS
from core.spec import ComparisonSpec, SeedSchedule, StoredVariant
from core.trials.robustness_checks import CORRUPT_SECONDS_PER_IMAGE, robustness_passes
from models.analysis import Analysis

__all__ = [
    "ASSUMED_FLOPS_PER_SECOND",
    "LONG_RUN_SECONDS",
    "estimated_seconds",
    "robustness_seconds",
    "submit_warnings",
]

ASSUMED_FLOPS_PER_SECOND = 2e10
"""What the estimate assumes one worker trains at: 20 GFLOP/s, a CPU's order of magnitude."""
LONG_RUN_SECONDS = 3600.0
"""From how long an estimated run a warning gives the estimate."""
PROBABILITY_LOSSES = frozenset({"sparse_categorical_crossentropy", "categorical_crossentropy"})
# Layers that pass their input's values through unchanged at inference (a softmax before them
# is still the output's).
_PASS_THROUGH = frozenset({"Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout"})


def _seed_warning(spec: ComparisonSpec) -> ErrorItem | None:
    most = spec.seeds.max if isinstance(spec.seeds, SeedSchedule) else len(spec.seeds)
    if most >= MIN_SEEDS:
        return None
    return {
        "loc": ["body", "seeds", "max"]
        if isinstance(spec.seeds, SeedSchedule)
        else ["body", "seeds"],
        "msg": f"{most} seed(s) per variant: a pair is tested from {MIN_SEEDS} seeds, so the "
        f"report will rank the variants but test no pair; give at least {MIN_SEEDS}, "
        "e.g. [0, 1, 2]",
    }


def _output_activation(variant: StoredVariant) -> str | None:
    """The activation that makes the variant's output: the last layer's (a ``Softmax`` layer
    counts as softmax), looking through layers that pass values on unchanged."""
    for layer in reversed(variant.layers):
        kind = layer.get("type")
        if kind in _PASS_THROUGH:
            continue
        if kind == "Softmax":
            return "softmax"
        activation = layer.get("activation")
        return str(activation) if activation is not None else None
    return None


def _softmax_warnings(spec: ComparisonSpec, variants: list[StoredVariant]) -> list[ErrorItem]:
    if spec.training.loss not in PROBABILITY_LOSSES:
        return []
    out: list[ErrorItem] = []
    for i, variant in enumerate(variants):
        activation = _output_activation(variant)
        if activation == "softmax":
            continue
        out.append(
            {
                "loc": ["body", "variants", i, "layers", len(variant.layers) - 1],
                "msg": f"variant {variant.name!r} ends in activation {activation or 'none'!r}, "
                f"but the loss {spec.training.loss} reads probabilities: give the last layer "
                '"activation": "softmax"',
            }
        )
    return out


def training_samples(spec: ComparisonSpec, dataset: DatasetInfo) -> int:
    """About how many samples a trial trains on: the (subsampled) dataset less its test and
    validation parts."""
    samples = dataset.samples
    if spec.dataset.max_samples is not None:
        samples = min(samples, spec.dataset.max_samples)
    return round(samples * (1 - spec.dataset.test_split) * (1 - spec.dataset.validation_split))


def estimated_seconds(
    spec: ComparisonSpec, dataset: DatasetInfo, analyses: dict[str, Analysis]
) -> float:
    """Training time of the whole comparison on one worker, roughly: a training step costs
    about three forward passes (forward, and backward twice that), at
    ``ASSUMED_FLOPS_PER_SECOND``; every seed the schedule may run is counted."""
    seeds = spec.seeds.max if isinstance(spec.seeds, SeedSchedule) else len(spec.seeds)
    per_seed = sum(3 * a.flops for a in analyses.values()) * training_samples(spec, dataset)
    training = per_seed * spec.training.epochs * seeds / ASSUMED_FLOPS_PER_SECOND
    return training + robustness_seconds(spec, dataset, analyses) * seeds


def robustness_seconds(
    spec: ComparisonSpec, dataset: DatasetInfo, analyses: dict[str, Analysis]
) -> float:
    """The robustness scoring of one seed, roughly: its corrupted copies of the test set made
    once (``CORRUPT_SECONDS_PER_IMAGE`` an image), and one forward pass of every variant over
    each copy at ``ASSUMED_FLOPS_PER_SECOND``; 0 without robustness."""
    passes = robustness_passes(spec, dataset)
    samples = dataset.samples
    if spec.dataset.max_samples is not None:
        samples = min(samples, spec.dataset.max_samples)
    images = passes * round(samples * spec.dataset.test_split)
    forward = sum(a.flops for a in analyses.values()) * images / ASSUMED_FLOPS_PER_SECOND
    return images * CORRUPT_SECONDS_PER_IMAGE + forward


def _time_warning(
    spec: ComparisonSpec, dataset: DatasetInfo, analyses: dict[str, Analysis]
) -> ErrorItem | None:
    seconds = estimated_seconds(spec, dataset, analyses)
    if seconds < LONG_RUN_SECONDS:
        return None
    trials = len(analyses) * (
        spec.seeds.max if isinstance(spec.seeds, SeedSchedule) else len(spec.seeds)
    )
    return {
        "loc": ["body"],
        "msg": f"about {seconds / 3600:,.1f} hours of training on one worker: {trials} trials "
        f"of {spec.training.epochs} epochs over {training_samples(spec, dataset):,} samples, "
        f"estimated from the variants' FLOPs at {ASSUMED_FLOPS_PER_SECOND / 1e9:g} GFLOP/s "
        "(a CPU's order; a GPU is faster, and workers share the trials)",
    }


def submit_warnings(
    spec: ComparisonSpec,
    dataset: DatasetInfo,
    variants: list[StoredVariant],
    analyses: dict[str, Analysis],
) -> list[ErrorItem]:
    """Every warning a valid comparison deserves, in the order of the spec's fields."""
    found: list[ErrorItem | None] = [
        _seed_warning(spec),
        *_softmax_warnings(spec, variants),
        _time_warning(spec, dataset, analyses),
    ]
    return [w for w in found if w is not None]
