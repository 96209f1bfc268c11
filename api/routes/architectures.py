"""``/v1/architectures/analyze``: static analysis of one variant, no training."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.deps import SessionDep, SettingsDep, TenantDep
from api.examples import ANALYZE_EXAMPLES
from api.schemas import AnalyzeRequest
from core.errors import InvalidInput
from core.spec import DatasetRef
from core.uploads import resolver_for
from core.validation import dataset_info, validate_variant

__all__ = ["router"]

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.post("/analyze")
def analyze(
    body: Annotated[AnalyzeRequest, Body(openapi_examples=ANALYZE_EXAMPLES)],
    settings: SettingsDep,
    session: SessionDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """Shapes, parameters, FLOPs, receptive fields and activation memory (largest layer output
    and the sum, per sample and per batch of ``batch_size``) of one variant, as Keras would
    build it."""
    dataset = None
    if body.dataset is not None:
        try:
            ref = DatasetRef.model_validate(body.dataset)
        except ValueError as exc:
            from api.problems import validation_errors

            errors = validation_errors(getattr(exc, "errors", list)())
            raise InvalidInput(
                [{"loc": ["body", "dataset", *e["loc"]], "msg": e["msg"]} for e in errors]
            ) from None
        dataset = dataset_info(ref.name, ["body", "dataset", "name"], resolver_for(session, tenant))
    normalised, analysis = validate_variant(
        body.variant,
        dataset=dataset,
        settings=settings,
        prefix=["body", "variant"],
        batch_size=body.batch_size,
    )
    return {**analysis.to_dict(), "variant": normalised}
