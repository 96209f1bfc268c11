"""What each trial of a comparison records besides its scores (``analysis`` in the spec), and
how many replicates it trains for the control of "do they differ" (``core.seeding``,
``core.report.controls``). ``core.spec`` re-exports it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

__all__ = ["DEFAULT_PROBE_SIZE", "MAX_REPLICATES", "AnalysisSpec"]

# 256: a Gram costs probe_size^2 x width multiply-adds per layer, and at 512 the article's
# conv128 (86,528 activations in its one hidden layer) spent more on it than on training
# (bench/README.md); it also leaves more examples for training under the per-seed design.
DEFAULT_PROBE_SIZE = 256
MAX_REPLICATES = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalysisSpec(_Strict):
    """What each trial records besides its scores, for "do they differ?":
    its test-set predictions, and per layer the centered Gram matrix of its activations over
    a probe set of ``probe_size`` examples (what linear CKA needs). The server refuses, at
    submit, a probe larger than the test set and a trial whose stored analysis would exceed
    ``ARCHBENCH_ANALYSIS_MAX_BYTES_PER_TRIAL``."""

    predictions: bool = True
    similarity: bool = True
    probe_size: Annotated[int, Field(ge=2, le=4096)] = DEFAULT_PROBE_SIZE
    replicates: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_REPLICATES,
            description="Replicates per variant and seed: each retrains the variant on the "
            "same data seed (split and data order) with another initialisation seed, the "
            "control that 'do they differ' and the CKA baseline compare the pair with. Each "
            "costs one more trial per variant and seed (1: twice the trials). 0 (the "
            "default): the control is two seeds of one variant, which share neither split "
            "nor order, and the report says so.",
        ),
    ] = 0

    @field_validator("replicates")
    @classmethod
    def _replicates_are_analysed(cls, v: int, info: ValidationInfo) -> int:
        if v and not (info.data.get("predictions", True) or info.data.get("similarity", True)):
            raise ValueError(
                "replicates serve the predictions' and the similarity's control; with both "
                "off they would train for nothing (use 0, or turn one on)"
            )
        return v

    @model_serializer(mode="wrap")
    def _without_no_replicates(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A spec without replicates is stored (and hashed) as it was before they existed.
        out: dict[str, Any] = handler(self)
        if out.get("replicates", 1) == 0:
            del out["replicates"]
        return out

    @property
    def probe_reserved(self) -> int:
        """The probe set's size when similarity is on, else 0. Under the per-seed design it is
        set aside before the seeds' splits, so it changes every trial's training data (and
        the reuse key covers it); with similarity off every example is available."""
        return self.probe_size if self.similarity else 0
