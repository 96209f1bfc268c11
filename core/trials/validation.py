"""Validate a whole comparison before anything is stored: every variant, every limit.

Errors are collected across all variants and raised together as one ``InvalidInput``, each
located in the request (``["body", "variants", 1, "layers", 0, "kernel_size"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.config import Settings
from core.datasets import BUILTIN_DATASETS, DatasetInfo
from core.errors import ErrorItem, InvalidInput
from core.spec import (
    UNION_TAGS,
    VARIANT_TRAINING,
    ComparisonSpec,
    StoredSpec,
    StoredVariant,
    TrainingSpec,
)
from core.trials.admission import memory_errors
from core.trials.advice import submit_warnings
from core.trials.matching import apply_matches
from core.trials.robustness_checks import robustness_errors, stored_robustness
from core.trials.storage import (
    analysis_errors,
    analysis_probe_size,
    per_trial_analysis_bytes,
    test_set_size,
)
from core.trials.submit_limits import (
    BODY,
    callback_errors,
    limit_errors,
    over,
    split_errors,
    time_errors,
)
from core.trials.tuning_checks import budget_of, tuning_submit_errors
from models.analysis import DEFAULT_BATCH_SIZE, Analysis, Limits, analyze_variant
from models.errors import SpecError
from models.graph import canonical_layers, resolve
from models.spec import parse_variant
from models.structure import structure

__all__ = [
    "ValidatedComparison",
    "analysis_errors",
    "analysis_probe_size",
    "dataset_info",
    "test_set_size",
    "validate_comparison",
    "validate_variant",
]


NOT_ARCHITECTURE = ("training", "match")
"""A variant's keys that are not its architecture's: ``models`` never sees them."""


@dataclass
class ValidatedComparison:
    """A comparison that passed validation, normalised for storage."""

    spec: StoredSpec
    analyses: dict[str, Analysis]
    trials_total: int
    epochs_total: int
    warnings: list[ErrorItem] = field(default_factory=list)
    """What is legal but probably unmeant (``core.trials.advice``), for the 202 answer."""
    analysis_bytes: dict[str, int] = field(default_factory=dict)
    """Per variant, the bytes of analysis one of its trials stores (the storage quota's
    estimate, ``core.trials.storage``)."""


def limits_of(settings: Settings) -> Limits:
    """The architecture limits configured for this service."""
    return Limits(
        max_layers=settings.max_layers,
        max_params=settings.max_params,
        max_flops=settings.max_flops,
        max_activation_bytes=settings.max_activation_bytes,
    )


def _variant_errors(
    raw_variants: Sequence[Any], dataset: DatasetInfo | None, settings: Settings
) -> list[ErrorItem]:
    """Every variant's own errors, and names used twice: independent of the rest."""
    errors: list[ErrorItem] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_variants):
        prefix: list[str | int] = ["body", "variants", i]
        try:
            validate_variant(raw, dataset=dataset, settings=settings, prefix=prefix)
        except InvalidInput as exc:
            errors.extend(exc.errors)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            if name in seen:
                errors.append(
                    {
                        "loc": [*prefix, "name"],
                        "msg": f"variant name {name!r} is already used by variant {seen[name]}",
                    }
                )
            else:
                seen[name] = i
    return errors


def body_errors(
    raw: Any,
    schema_errors: Sequence[ErrorItem],
    settings: Settings,
    resolve: Callable[[str], DatasetInfo | None] | None = None,
) -> list[ErrorItem]:
    """All independent errors of a comparison body that failed its schema: the schema's
    errors (an empty ``seeds``, say) together with what ``validate_comparison`` would have
    found in the parts that can still be read (each variant, duplicate names, the dataset),
    so a client fixes everything in one round. A schema error at the same place as one found
    here gives way to it (``unknown dataset ...; the datasets are ...`` rather than a regular
    expression)."""
    if not isinstance(raw, dict):
        return list(schema_errors)
    found: list[ErrorItem] = []
    dataset: DatasetInfo | None = None
    ref = raw.get("dataset")
    name = ref.get("name") if isinstance(ref, dict) else None
    if isinstance(name, str):
        try:
            dataset = dataset_info(name, ["body", "dataset", "name"], resolve)
        except InvalidInput as exc:
            found.extend(exc.errors)
    variants = raw.get("variants")
    if isinstance(variants, list) and not any(
        e["loc"][:2] == ["body", "variants"] and len(e["loc"]) == 2 for e in schema_errors
    ):
        found.extend(_without_dataset(_variant_errors(variants, dataset, settings), dataset))
    at = {tuple(e["loc"]) for e in found}
    merged = [e for e in schema_errors if tuple(e["loc"]) not in at]
    for e in found:
        if e not in merged:
            merged.append(e)
    return merged


def _without_dataset(errors: list[ErrorItem], dataset: DatasetInfo | None) -> list[ErrorItem]:
    """A variant's errors, less "no input shape" when the dataset it would take its shape from
    is itself in error: that error, reported at ``dataset``, is the one to fix."""
    if dataset is not None:
        return errors
    return [
        e
        for e in errors
        if not (e["loc"][-1:] == ["input_shape"] and e["msg"].startswith("no input shape"))
    ]


def unknown_dataset_message(name: Any, resolve: Any = None) -> str:
    """What to say about a dataset name that names nothing: the names that would work (the
    built-in datasets, and the tenant's uploads when ``resolve`` can list them)."""
    builtin = ", ".join(BUILTIN_DATASETS)
    msg = f"unknown dataset {name!r}; the datasets are {builtin}"
    names = getattr(resolve, "names", None)
    uploads: list[str] = list(names()) if callable(names) else []
    if uploads:
        shown = ", ".join(uploads[:20]) + (
            f" and {len(uploads) - 20} more" if len(uploads) > 20 else ""
        )
        msg += f"; your uploads: {shown}"
    else:
        msg += "; or upload:<id> of a dataset you uploaded (POST /v1/datasets; you have none)"
    return msg


def dataset_info(
    name: str,
    loc: list[str | int],
    resolve: Callable[[str], DatasetInfo | None] | None = None,
) -> DatasetInfo:
    """Facts about a built-in dataset, or an upload found by ``resolve``; else a located error
    that lists the names there are."""
    info = BUILTIN_DATASETS.get(name)
    if info is None and resolve is not None:
        info = resolve(name)
    if info is None:
        raise InvalidInput([{"loc": loc, "msg": unknown_dataset_message(name, resolve)}])
    return info


def _prefix_errors(
    raw: dict[str, Any], dataset: DatasetInfo | None, settings: Settings
) -> list[ErrorItem]:
    """When some layers of a native variant do not parse (a type typo), the shape errors of
    the layers before the first such layer: they do not depend on it, so they are reported in
    the same answer instead of after the typo is fixed. Layers after it cannot be checked
    (their input shape is unknown)."""
    layers = raw.get("layers")
    if not isinstance(layers, list) or raw.get("keras_config") is not None:
        return []
    good = 0
    for layer in layers:
        try:
            parse_variant({"name": "_", "layers": [layer]})
        except SpecError:
            break
        good += 1
    if good == 0 or good == len(layers):
        return []
    try:
        head = {"name": "_", "layers": layers[:good]}
        if "input_shape" in raw:
            head["input_shape"] = raw["input_shape"]
        analyze_variant(
            parse_variant(head),
            input_shape=dataset.input_shape if dataset else None,
            limits=None,
            whole=False,  # the layers after the typo may still take these layers' outputs
        )
    except SpecError as exc:
        return [
            e
            for e in exc.errors
            if len(e["loc"]) >= 2 and e["loc"][0] == "layers" and isinstance(e["loc"][1], int)
        ]
    return []


def _prefixed(errors: list[ErrorItem], prefix: list[str | int]) -> list[ErrorItem]:
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"]} for e in errors]


def _check_input_shape(shape: tuple[int, ...] | None, dataset: DatasetInfo | None) -> None:
    """The worker feeds the dataset's samples as they are: another input shape fails there."""
    if shape is None or dataset is None or tuple(shape) == tuple(dataset.input_shape):
        return
    raise SpecError(
        [
            {
                "loc": ["input_shape"],
                "msg": f"input_shape {list(shape)} does not match the samples of "
                f"{dataset.name}, {list(dataset.input_shape)}; leave it out to use the "
                "dataset's",
            }
        ]
    )


def validate_variant(
    raw: dict[str, Any],
    *,
    dataset: DatasetInfo | None,
    settings: Settings,
    prefix: list[str | int],
    batch_size: int = DEFAULT_BATCH_SIZE,
    training: TrainingSpec | None = None,
) -> tuple[StoredVariant, Analysis]:
    """Parse and analyse one variant; returns it normalised for storage, and its analysis.
    Its own ``training`` is checked over the comparison's ``training`` (the defaults when
    None)."""
    override = raw.get("training") if isinstance(raw, dict) else None
    override_errors = _training_errors(override, training or TrainingSpec(), [*prefix, "training"])
    if isinstance(raw, dict):  # not the architecture's: models never sees them
        raw = {k: v for k, v in raw.items() if k not in NOT_ARCHITECTURE}
    try:
        variant = parse_variant(raw)
        _check_input_shape(variant.input_shape, dataset)
        layers, input_shape, analysis = analyze_variant(
            variant,
            input_shape=dataset.input_shape if dataset else None,
            num_classes=dataset.num_classes if dataset else None,
            limits=limits_of(settings),
            batch_size=batch_size,
        )
    except SpecError as exc:
        errors = list(exc.errors)
        if isinstance(raw, dict):
            seen = {tuple(e["loc"]) for e in errors}
            errors += [
                e for e in _prefix_errors(raw, dataset, settings) if tuple(e["loc"]) not in seen
            ]
        raise InvalidInput(override_errors + _prefixed(errors, prefix)) from None
    if override_errors:
        raise InvalidInput(override_errors)
    normalised = StoredVariant(
        name=variant.name,
        input_shape=input_shape,
        layers=canonical_layers(resolve(layers, variant.output)),
        source="keras_config" if variant.keras_config is not None else "layers",
        training=override or None,
    )
    return normalised, analysis


def _training_errors(override: Any, base: TrainingSpec, loc: list[str | int]) -> list[ErrorItem]:
    """A variant's own ``training``: an object of ``VARIANT_TRAINING`` keys that, over the
    comparison's settings, still makes valid settings (``momentum`` needs an optimizer that
    takes it, whichever of the two set them)."""
    if override is None:
        return []
    if not isinstance(override, dict):
        return [{"loc": loc, "msg": "a variant's training must be an object"}]
    allowed = ", ".join(VARIANT_TRAINING)
    errors: list[ErrorItem] = [
        {
            "loc": [*loc, key],
            "msg": f"{key!r} is the same for every variant (the comparison's training); a "
            f"variant's training may set {allowed}",
        }
        for key in override
        if key not in VARIANT_TRAINING
    ]
    if errors:
        return errors
    try:
        base.with_override(override)
    except ValidationError as exc:
        for e in exc.errors():
            where = [p for p in e["loc"] if not (isinstance(p, str) and p in UNION_TAGS)]
            msg = str(e["msg"]).removeprefix("Value error, ")
            errors.append({"loc": [*loc, *where], "msg": msg})
    return errors


def validate_comparison(
    spec: ComparisonSpec,
    settings: Settings,
    *,
    resolve: Callable[[str], DatasetInfo | None] | None = None,
) -> ValidatedComparison:
    """Validate every variant and limit; raise one InvalidInput with all located errors.

    ``resolve`` finds the tenant's uploaded datasets (``core.data.uploads.resolver_for``).
    """
    errors: list[ErrorItem] = []
    try:
        dataset: DatasetInfo | None = dataset_info(
            spec.dataset.name, [*BODY, "dataset", "name"], resolve
        )
    except InvalidInput as exc:
        errors.extend(exc.errors)
        dataset = None
    errors += limit_errors(spec, settings)
    if dataset is not None:
        errors += split_errors(spec, dataset)
    errors += time_errors(spec, settings)
    errors += callback_errors(spec, settings)
    variants, analyses, variant_errors = _normalised_variants(spec, dataset, settings)
    errors += _without_dataset(variant_errors, dataset) + tuning_submit_errors(
        spec, variants, settings
    )
    if dataset is not None:
        errors += apply_matches(
            spec.variants,
            variants,
            analyses,
            dataset=dataset,
            limits=limits_of(settings),
            batch_size=spec.training.batch_size,
            body=BODY,
        )
    errors += robustness_errors(spec, dataset, BODY)
    if dataset is not None and not errors:
        errors.extend(analysis_errors(spec, dataset, variants, settings, BODY))
        errors.extend(memory_errors(spec, dataset, variants, analyses, settings, BODY))
    if errors:
        raise InvalidInput(errors)
    _structures(spec.baseline, variants, analyses)
    trials_total, epochs_total = budget_of(spec, len(variants))
    return ValidatedComparison(
        spec=_stored(spec, dataset, variants, settings),
        analyses=analyses,
        trials_total=trials_total,
        epochs_total=epochs_total,
        warnings=submit_warnings(spec, dataset, variants, analyses) if dataset else [],
        analysis_bytes=per_trial_analysis_bytes(spec, dataset, variants) if dataset else {},
    )


def _structures(
    baseline: str | None, variants: list[StoredVariant], analyses: dict[str, Analysis]
) -> None:
    """Each variant's analysis says how its graph differs from the baseline's (else the first
    variant's)."""
    if len(variants) < 2:
        return
    ref = next((v for v in variants if v.name == baseline), variants[0])
    ref_layers = ref.parse().layers or []
    for v in variants:
        if v is not ref:
            analyses[v.name].structure = structure(
                ref_layers, v.parse().layers or [], ref.name, v.name
            )


def _normalised_variants(
    spec: ComparisonSpec, dataset: DatasetInfo | None, settings: Settings
) -> tuple[list[StoredVariant], dict[str, Analysis], list[ErrorItem]]:
    """Every variant validated and normalised, with its analysis, by name; and the errors of
    those that failed, names used twice and a baseline that names none of them."""
    errors: list[ErrorItem] = []
    variants: list[StoredVariant] = []
    analyses: dict[str, Analysis] = {}
    seen: dict[str, int] = {}
    for i, raw in enumerate(spec.variants):
        prefix: list[str | int] = [*BODY, "variants", i]
        try:
            normalised, analysis = validate_variant(
                raw,
                dataset=dataset,
                settings=settings,
                prefix=prefix,
                batch_size=spec.training.batch_size,
                training=spec.training,
            )
        except InvalidInput as exc:
            errors.extend(exc.errors)
            continue
        name = normalised.name
        if name in seen:
            errors.append(
                {
                    "loc": [*prefix, "name"],
                    "msg": f"variant name {name!r} is already used by variant {seen[name]}",
                }
            )
            continue
        seen[name] = i
        variants.append(normalised)
        analyses[name] = analysis
    if spec.baseline is not None and spec.baseline not in seen:
        names = ", ".join(repr(n) for n in seen) or "none"
        errors.append(
            over(
                ["baseline"],
                f"baseline {spec.baseline!r} is not a variant of this comparison "
                f"(variants: {names})",
            )
        )
    errors.extend(_pair_errors(spec, seen))
    return variants, analyses, errors


def _pair_errors(spec: ComparisonSpec, seen: Mapping[str, int]) -> list[ErrorItem]:
    """Named contrasts must name two different variants of the comparison."""
    errors: list[ErrorItem] = []
    for i, (a, b) in enumerate(spec.pairs or ()):
        for j, name in enumerate((a, b)):
            if name not in seen:
                errors.append(
                    over(["pairs", i, j], f"{name!r} is not a variant of this comparison")
                )
        if a == b:
            errors.append(
                over(["pairs", i], f"a pair needs two different variants, not {a!r} twice")
            )
    return errors


def _stored(
    spec: ComparisonSpec,
    dataset: DatasetInfo | None,
    variants: list[StoredVariant],
    settings: Settings,
) -> StoredSpec:
    """The spec to store: the request with its variants normalised, an upload named by the
    name it was uploaded with recorded as ``upload:<id>`` (what the worker loads), the probe
    size the comparison gets and the time budget it gets."""
    ref = spec.dataset
    if dataset is not None and dataset.name != ref.name:
        ref = ref.model_copy(update={"name": dataset.name})
    recorded = spec.analysis
    if dataset is not None:
        recorded = recorded.model_copy(
            update={"probe_size": analysis_probe_size(spec, dataset)}, deep=True
        )
    return StoredSpec.model_validate(
        {
            **dict(spec),
            "dataset": ref,
            "variants": variants,
            "analysis": recorded,
            "robustness": stored_robustness(spec, dataset),
            "training": spec.training.model_copy(
                update={"max_seconds": spec.training.max_seconds or settings.trial_max_seconds},
                deep=True,
            ),
        }
    )
