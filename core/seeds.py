"""Adaptive seeds: the ``{"min", "max", "step", "boundary"}`` form of a comparison's ``seeds``
(``core.spec`` re-exports it; ``core.trials.rounds`` runs its rounds)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_SEED", "SeedSchedule"]

MAX_SEED = 2**31 - 1
"""The largest seed a comparison may name (and the first tuning seed, counted down)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedSchedule(_Strict):
    """Adaptive seeds: ``min`` seeds per variant (0..min-1), then ``step`` more per variant in
    rounds while some tested pair is undecided, up to ``max`` seeds per variant."""

    min: Annotated[int, Field(ge=1, le=MAX_SEED)] = 3
    max: Annotated[int, Field(ge=1, le=MAX_SEED)] = 20
    step: Annotated[int, Field(ge=1, le=MAX_SEED)] = 1
    boundary: Annotated[
        Literal["pocock", "obrien_fleming"],
        Field(
            description="The group-sequential boundary of the looks: obrien_fleming (the "
            "default: strict early, close to the fixed design's level at max, so it keeps "
            "most of the fixed design's power) or pocock (one constant level: stops early "
            "most easily, at a cost in power at max)."
        ),
    ] = "obrien_fleming"

    # max >= min is checked by core.trials.validation, which can point at ["body", "seeds", "max"].

    @property
    def rounds_max(self) -> int:
        """How many rounds (looks) the schedule can take: 1 + ceil((max - min) / step)."""
        return 1 + -(-(self.max - self.min) // self.step)

    def round_of(self, seeds_per_variant: int) -> int:
        """The round whose seeds are ``seeds_per_variant`` per variant (1 = the first)."""
        extra = max(0, seeds_per_variant - self.min)
        return min(self.rounds_max, 1 + -(-extra // self.step))

    def next_count(self, seeds_per_variant: int) -> int:
        """Seeds per variant after one more round (``max`` at most)."""
        return min(self.max, seeds_per_variant + self.step)
