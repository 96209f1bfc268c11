"""A variant as stored, and what its ``match`` asks for and what it got.

Kept apart from ``core.spec`` (which re-exports them) so that each module stays small: the
request's variants are raw JSON there, validated by ``models`` in ``core.trials.validation``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from models.spec import Variant, parse_variant

__all__ = ["MatchRecord", "MatchSpec", "StoredVariant"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchSpec(_Strict):
    """A variant's ``match``: resize its widths (filters, units) by one factor so that its
    parameter or FLOP count lies within ``tolerance`` of another variant's, so that the two
    compare at the same size (``models.match``; checked and applied at submit)."""

    variant: Annotated[str, Field(min_length=1, max_length=200)]
    by: Literal["params", "flops"] = "params"
    tolerance: Annotated[float, Field(gt=0.0, le=1.0)] = 0.05


class MatchRecord(_Strict):
    """What a matched variant was resized to, as stored: the request's ``match`` with the
    factor found, every layer's width after it (null for a layer without one), its count and
    the target's, and the gap ``count / target - 1``."""

    variant: str
    by: Literal["params", "flops"]
    tolerance: float
    factor: float
    widths: list[int | None]
    count: int
    target: int
    gap: float


class StoredVariant(_Strict):
    """One variant as validated and stored: its name, the input shape it was checked against,
    and its layers in native form (a ``keras_config`` is converted at submit; ``source`` says
    which the client sent).

    The layers stay the architecture's JSON document, each a ``models.spec`` layer dumped
    with every default: ``models`` owns their types and parses them where a model is built
    (``parse``, in the worker). A stored architecture that no longer builds (a bug, a layer a
    newer Keras refuses) thus fails its own trials, not every read of its comparison.
    """

    name: str
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]]
    source: Literal["layers", "keras_config"] = "layers"
    training: dict[str, Any] | None = None
    """The variant's own training settings (``VARIANT_TRAINING`` keys) over the comparison's,
    as validated; None (left out of the JSON) when it trains as the comparison says."""
    match: MatchRecord | None = None
    """How its widths were resized to another variant's size (``layers`` are the resized
    ones); None (left out of the JSON) when it trains as it was sent."""

    @model_serializer(mode="wrap")
    def _without_no_training(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for key in ("training", "match"):
            if out.get(key, 0) is None:
                del out[key]
        return out

    def parse(self) -> Variant:
        """The variant as ``models`` types it (``SpecError`` when a layer does not parse)."""
        return parse_variant(
            {"name": self.name, "input_shape": list(self.input_shape), "layers": self.layers}
        )
