"""``/v1/architectures/analyze``: static analysis of one variant, no training."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.deps import SessionDep, SettingsDep, TenantDep
from api.examples import ANALYZE_EXAMPLES
from api.schemas import AnalyzeRequest
from core.data.uploads import resolver_for
from core.errors import ErrorItem, InvalidInput
from core.spec import DatasetRef
from core.trials.validation import dataset_info, validate_variant

__all__ = ["router"]

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.post("/analyze")
def analyze(
    body: Annotated[AnalyzeRequest, Body(openapi_examples=ANALYZE_EXAMPLES)],
    settings: SettingsDep,
    session: SessionDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Shapes, parameters, FLOPs, receptive fields and activation memory (largest layer output,
    the sum, and the peak alive at once, per sample and per batch of ``batch_size``) of one
    variant, as Keras would build it. A graph's nodes come with their ``inputs`` (names, or
    ``"input"``), the receptive field is the largest over all paths into a node, and the
    answer gives ``depth`` (the longest path, in layers) and ``merge_points``.

    The input shape is the variant's ``input_shape``, else the dataset's: send
    ``{"variant": {...}, "dataset": {"name": "mnist_5k"}}`` or
    ``{"variant": {"name": ..., "input_shape": [28, 28, 1], "layers": [...]}}``. The dataset's
    errors and the variant's come in one answer."""
    errors: list[ErrorItem] = []
    dataset = None
    if body.dataset is not None:
        name_loc: list[str | int] = ["body", "dataset", "name"]
        try:
            DatasetRef.model_validate(body.dataset)
        except ValueError as exc:
            from api.problems import validation_errors

            found = validation_errors(getattr(exc, "errors", list)())
            errors += [
                {"loc": ["body", "dataset", *e["loc"]], "msg": e["msg"]}
                for e in found
                if e["loc"] != ["name"]  # the name is checked below, with the names there are
            ]
        name = body.dataset.get("name")
        if isinstance(name, str):
            try:
                dataset = dataset_info(name, name_loc, resolver_for(session, tenant))
            except InvalidInput as exc:
                errors += exc.errors
        else:
            errors.append({"loc": name_loc, "msg": "a dataset name (a string) is required"})
    try:
        normalised, analysis = validate_variant(
            body.variant,
            dataset=dataset,
            settings=settings,
            prefix=["body", "variant"],
            batch_size=body.batch_size,
        )
    except InvalidInput as exc:
        if dataset is None and body.dataset is not None:
            # Without a dataset the input shape is unknown: that is the dataset's error.
            exc.errors[:] = [e for e in exc.errors if e["loc"][-1:] != ["input_shape"]]
        raise InvalidInput([*errors, *exc.errors]) from None
    if errors:
        raise InvalidInput(errors)
    return {**analysis.to_dict(), "variant": normalised}
