"""``/v1/datasets``: the datasets a comparison can name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.schemas import Page
from core.datasets import BUILTIN_DATASETS

__all__ = ["router"]

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.get("", response_model=Page[dict[str, Any]])
def list_datasets() -> Page[dict[str, Any]]:
    """The built-in datasets with their shapes and class counts."""
    return Page(items=[d.to_dict() for d in BUILTIN_DATASETS.values()], next_cursor=None)
