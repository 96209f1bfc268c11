"""Validate a whole comparison before anything is stored: every variant, every limit.

Errors are collected across all variants and raised together as one ``InvalidInput``, each
located in the request (``["body", "variants", 1, "layers", 0, "kernel_size"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.datasets import BUILTIN_DATASETS, DatasetInfo
from core.destinations import allows_private, literal_refusal
from core.errors import ErrorItem, InvalidInput
from core.spec import ComparisonSpec
from models.analysis import Analysis, Limits, analyze_variant
from models.errors import SpecError
from models.spec import parse_variant

__all__ = ["ValidatedComparison", "dataset_info", "validate_comparison", "validate_variant"]


@dataclass
class ValidatedComparison:
    """A comparison that passed validation, normalised for storage."""

    spec: dict[str, Any]
    analyses: dict[str, dict[str, Any]]
    trials_total: int
    epochs_total: int


def limits_of(settings: Settings) -> Limits:
    """The architecture limits configured for this service."""
    return Limits(
        max_layers=settings.max_layers,
        max_params=settings.max_params,
        max_flops=settings.max_flops,
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
        found.extend(_variant_errors(variants, dataset, settings))
    at = {tuple(e["loc"]) for e in found}
    merged = [e for e in schema_errors if tuple(e["loc"]) not in at]
    for e in found:
        if e not in merged:
            merged.append(e)
    return merged


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


def validate_variant(
    raw: dict[str, Any],
    *,
    dataset: DatasetInfo | None,
    settings: Settings,
    prefix: list[str | int],
) -> tuple[dict[str, Any], Analysis]:
    """Parse and analyse one variant; returns its normalised JSON and its analysis."""
    try:
        variant = parse_variant(raw)
        layers, input_shape, analysis = analyze_variant(
            variant,
            input_shape=dataset.input_shape if dataset else None,
            num_classes=dataset.num_classes if dataset else None,
            limits=limits_of(settings),
        )
    except SpecError as exc:
        errors = list(exc.errors)
        if isinstance(raw, dict):
            seen = {tuple(e["loc"]) for e in errors}
            errors += [
                e for e in _prefix_errors(raw, dataset, settings) if tuple(e["loc"]) not in seen
            ]
        raise InvalidInput(_prefixed(errors, prefix)) from None
    normalised = {
        "name": variant.name,
        "input_shape": list(input_shape),
        "layers": [layer.model_dump(mode="json") for layer in layers],
        "source": "keras_config" if variant.keras_config is not None else "layers",
    }
    return normalised, analysis


def validate_comparison(
    spec: ComparisonSpec,
    settings: Settings,
    *,
    resolve: Callable[[str], DatasetInfo | None] | None = None,
) -> ValidatedComparison:
    """Validate every variant and limit; raise one InvalidInput with all located errors.

    ``resolve`` finds the tenant's uploaded datasets (``core.uploads.resolver_for``).
    """
    errors: list[ErrorItem] = []
    body: list[str | int] = ["body"]
    try:
        dataset: DatasetInfo | None = dataset_info(
            spec.dataset.name, [*body, "dataset", "name"], resolve
        )
    except InvalidInput as exc:
        errors.extend(exc.errors)
        dataset = None
    if len(spec.variants) > settings.max_variants:
        errors.append(
            {
                "loc": [*body, "variants"],
                "msg": f"{len(spec.variants)} variants exceeds the limit of "
                f"{settings.max_variants}",
            }
        )
    if len(spec.seeds) > settings.max_seeds:
        errors.append(
            {
                "loc": [*body, "seeds"],
                "msg": f"{len(spec.seeds)} seeds exceeds the limit of {settings.max_seeds}",
            }
        )
    if spec.training.epochs > settings.max_epochs:
        errors.append(
            {
                "loc": [*body, "training", "epochs"],
                "msg": f"{spec.training.epochs} epochs exceeds the limit of {settings.max_epochs}",
            }
        )
    trial_epochs = len(spec.variants) * len(spec.seeds) * spec.training.epochs
    if trial_epochs > settings.max_trial_epochs:
        errors.append(
            {
                "loc": [*body, "training", "epochs"],
                "msg": f"{trial_epochs:,} trial-epochs (variants x seeds x epochs) exceeds the "
                f"limit of {settings.max_trial_epochs:,}",
            }
        )
    if spec.training.max_seconds and spec.training.max_seconds > settings.trial_max_seconds:
        errors.append(
            {
                "loc": [*body, "training", "max_seconds"],
                "msg": f"{spec.training.max_seconds} s exceeds the server's ceiling of "
                f"{settings.trial_max_seconds} s per trial",
            }
        )

    if spec.callback_url and not settings.webhook_secret:
        errors.append(
            {
                "loc": [*body, "callback_url"],
                "msg": "webhooks are off on this server: it has no ARCHBENCH_WEBHOOK_SECRET "
                "to sign them with",
            }
        )
    elif spec.callback_url and not allows_private(settings):
        reason = literal_refusal(spec.callback_url)
        if reason:
            errors.append(
                {
                    "loc": [*body, "callback_url"],
                    "msg": f"callback_url must be a public address: {reason} "
                    "(ARCHBENCH_WEBHOOK_ALLOW_PRIVATE is off on this server)",
                }
            )

    variants: list[dict[str, Any]] = []
    analyses: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for i, raw in enumerate(spec.variants):
        prefix: list[str | int] = [*body, "variants", i]
        try:
            normalised, analysis = validate_variant(
                raw, dataset=dataset, settings=settings, prefix=prefix
            )
        except InvalidInput as exc:
            errors.extend(exc.errors)
            continue
        name = normalised["name"]
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
        analyses[name] = analysis.to_dict()
    if errors:
        raise InvalidInput(errors)

    normalised_spec = spec.model_dump(mode="json")
    normalised_spec["variants"] = variants
    if normalised_spec["training"].get("max_seconds") is None:
        normalised_spec["training"]["max_seconds"] = settings.trial_max_seconds
    return ValidatedComparison(
        spec=normalised_spec,
        analyses=analyses,
        trials_total=len(variants) * len(spec.seeds),
        epochs_total=trial_epochs,
    )
