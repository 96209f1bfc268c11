"""Matched sizes at submit: a variant's ``match`` resizes its widths to another variant's size.

``{"match": {"variant": "conv128", "by": "params" | "flops", "tolerance": 0.05}}`` scales the
widths (filters, units) of the variant's layers by the one factor ``models.match`` finds by
the static analysis, before anything is stored or queued. The stored variant then holds the
resized layers and a ``MatchRecord`` (the factor, the widths, the count reached and the
target's), and its analysis is the resized variant's. Refused, located at
``variants[i].match``, when the target is not a variant, is the variant itself or is itself
matched (the target's size must be what was sent), or when no factor gets within the
tolerance (the message says how near the closest came).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from core.datasets import DatasetInfo
from core.errors import ErrorItem
from core.report import format as fmt
from core.spec import MatchRecord, MatchSpec, StoredVariant
from models.analysis import Analysis, Limits, analyze
from models.errors import SpecError
from models.graph import canonical_layers, resolve
from models.match import Match, match_widths

__all__ = ["apply_matches", "match_spec_errors"]


def match_spec_errors(raw: Any, loc: list[str | int]) -> tuple[MatchSpec | None, list[ErrorItem]]:
    """The ``match`` object of one variant parsed, or its located schema errors."""
    try:
        return MatchSpec.model_validate(raw), []
    except ValidationError as exc:
        errors: list[ErrorItem] = [
            {"loc": [*loc, *e["loc"]], "msg": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        return None, errors


def _describe(found: Match) -> str:
    widths = [w for w in found.widths()[:-1] if w is not None]
    return (
        f"x{found.factor:.3g} (widths {widths}) gives {found.count:,} "
        f"({fmt.share(found.gap, signed=True)})"
    )


def _requests(
    raw_variants: Sequence[Any], body: list[str | int]
) -> tuple[dict[int, MatchSpec], list[ErrorItem]]:
    """Each variant's parsed ``match`` by its index, and the errors of the malformed ones."""
    wanted: dict[int, MatchSpec] = {}
    errors: list[ErrorItem] = []
    for i, raw in enumerate(raw_variants):
        if not isinstance(raw, dict) or raw.get("match") is None:
            continue
        parsed, found = match_spec_errors(raw["match"], [*body, "variants", i, "match"])
        errors.extend(found)
        if parsed is not None:
            wanted[i] = parsed
    return wanted, errors


def _target_problem(
    i: int, own: Any, spec: MatchSpec, names: Sequence[Any], wanted: Mapping[int, MatchSpec]
) -> str | None:
    """Why variant ``i`` (named ``own``) cannot be matched to ``spec.variant``, if it cannot."""
    if spec.variant == own:
        return f"a variant cannot be matched to itself ({own!r}); name another variant"
    if spec.variant not in names:
        listed = ", ".join(repr(n) for n in names if isinstance(n, str) and n != own)
        return f"{spec.variant!r} is not a variant of this comparison (variants: {listed})"
    j = names.index(spec.variant)
    if j in wanted:
        return (
            f"{spec.variant!r} is itself matched (to {wanted[j].variant!r}): match to a "
            "variant that trains at the size it was sent with"
        )
    return None


def apply_matches(
    raw_variants: Sequence[Any],
    variants: list[StoredVariant],
    analyses: dict[str, Analysis],
    *,
    dataset: DatasetInfo,
    limits: Limits,
    batch_size: int,
    body: list[str | int],
) -> list[ErrorItem]:
    """Resize every variant whose ``match`` asks for it, in place in ``variants`` and
    ``analyses`` (by name); returns the located errors. A variant or target that failed its
    own validation is skipped: its error is already reported."""
    wanted, errors = _requests(raw_variants, body)
    names = [raw.get("name") if isinstance(raw, dict) else None for raw in raw_variants]
    stored = {v.name: k for k, v in enumerate(variants)}
    for i, spec in wanted.items():
        loc: list[str | int] = [*body, "variants", i, "match"]
        problem = _target_problem(i, names[i], spec, names, wanted)
        if problem is not None:
            errors.append({"loc": loc, "msg": problem})
            continue
        own, target = names[i], spec.variant
        if own not in stored or target not in stored or target not in analyses:
            continue
        target_analysis = analyses[target]
        count = target_analysis.params if spec.by == "params" else target_analysis.flops
        k = stored[str(own)]
        try:
            resized, analysis = _resized(
                variants[k], spec, count, dataset=dataset, limits=limits, batch_size=batch_size
            )
        except SpecError as exc:
            errors.extend({"loc": loc, "msg": e["msg"]} for e in exc.errors)
            continue
        variants[k] = resized
        analyses[resized.name] = analysis
    return errors


def _resized(
    variant: StoredVariant,
    spec: MatchSpec,
    target: int,
    *,
    dataset: DatasetInfo,
    limits: Limits,
    batch_size: int,
) -> tuple[StoredVariant, Analysis]:
    """The variant resized to ``target`` and its analysis under the server's limits; raises
    ``SpecError`` when no factor is within the tolerance or the resized variant is over a
    limit."""
    layers = list(variant.parse().layers or [])
    shape = tuple(variant.input_shape)
    found, closest = match_widths(
        layers,
        shape,
        target=target,
        by=spec.by,
        tolerance=spec.tolerance,
        num_classes=dataset.num_classes,
    )
    what = "parameters" if spec.by == "params" else "FLOPs"
    if found is None:
        raise SpecError(
            [
                {
                    "loc": [],
                    "msg": f"no width factor brings {variant.name}'s {what} within "
                    f"{fmt.share(spec.tolerance)} of {spec.variant}'s {target:,}: the closest, "
                    f"{_describe(closest)}; widen the tolerance or change the layers",
                }
            ]
        )
    try:
        analysis = analyze(
            found.layers,
            shape,
            num_classes=dataset.num_classes,
            limits=limits,
            batch_size=batch_size,
        )
    except SpecError as exc:
        raise SpecError(
            [
                {"loc": [], "msg": f"resized to {spec.variant}'s {what}, {e['msg']}"}
                for e in exc.errors
            ]
        ) from None
    record = MatchRecord(
        variant=spec.variant,
        by=spec.by,
        tolerance=spec.tolerance,
        factor=found.factor,
        widths=found.widths(),
        count=found.count,
        target=target,
        gap=found.gap,
    )
    resized = variant.model_copy(
        update={"layers": canonical_layers(resolve(found.layers, None)), "match": record}
    )
    return resized, analysis
