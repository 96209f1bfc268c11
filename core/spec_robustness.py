"""The comparison's ``robustness``: which corrupted copies of each trial's test set every
trained model is also scored on (``core.data.corruptions``; README, "Robustness under
corruptions").

The names are checked by ``core.trials.robustness_checks`` against ``core.data.corruptions``
(the spec module sits below ``core.data`` and cannot import it), which also fills in the
dataset's default subset when ``corruptions`` is left out and the default severity when
``severities`` is: the stored spec always names the corruptions and severities its trials
were scored on.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["RobustnessSpec"]

Severity = Annotated[int, Field(ge=1, le=5)]


class RobustnessSpec(BaseModel):
    """Score every trained model on corrupted copies of its test set (MNIST-C and
    CIFAR-10-C style), one per (corruption, severity), generated from the trial's data seed
    so every variant of a seed is scored on identical corrupted examples. Image datasets
    only."""

    model_config = ConfigDict(extra="forbid")

    corruptions: Annotated[
        list[Annotated[str, Field(max_length=32)]] | None,
        Field(
            min_length=1,
            max_length=15,
            description="Any of gaussian_noise, shot_noise, impulse_noise, motion_blur, "
            "glass_blur, rotate, shear, scale, translate, brightness, contrast, fog, spatter, "
            "stripe, dotted_line. Null: the default subset for the dataset's images (grey: "
            "gaussian_noise, impulse_noise, motion_blur, rotate, translate, stripe; colour: "
            "gaussian_noise, shot_noise, motion_blur, fog, brightness, contrast).",
            examples=[["gaussian_noise", "rotate"]],
        ),
    ] = None
    severities: Annotated[
        list[Severity] | None,
        Field(
            min_length=1,
            max_length=5,
            description="Severities 1 (mild) to 5 (strong). Null: the middle one, 3 (each "
            "severity is one more pass over the test set per corruption).",
        ),
    ] = None

    @field_validator("corruptions", "severities")
    @classmethod
    def _unique(cls, v: list[str] | list[int] | None) -> list[str] | list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("must not repeat a value")
        return v

    @property
    def cells(self) -> list[tuple[str, int]]:
        """Every (corruption, severity) scored, corruption-major (empty before the defaults
        are filled in)."""
        return [(c, s) for c in self.corruptions or () for s in self.severities or ()]
