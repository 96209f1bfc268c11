"""A report trial factory: ``TrialResult`` rows with sensible defaults, for the report tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.report.build import EpochPoint, TrialResult

__all__ = ["make_trial"]


def make_trial(
    variant: str,
    seed: int,
    value: float | None = None,
    *,
    status: str = "succeeded",
    params: int | None = 100_000,
    flops: int | None = 1_000_000,
    test_loss: float | None = None,
    stop_reason: str | None = None,
    val_curve: Sequence[float] | None = None,
    epochs_planned: int = 3,
    train_seconds: float | None = 6.0,
    **overrides: Any,
) -> TrialResult:
    """A trial whose test accuracy is ``value``; curve defaults to three rising epochs."""
    if val_curve is None:
        val_curve = [] if value is None else [value - 0.1, value - 0.02, value]
    curve = tuple(
        EpochPoint(epoch=i + 1, val_accuracy=v, val_loss=1 - v, accuracy=v, loss=1 - v, seconds=2.0)
        for i, v in enumerate(val_curve)
    )
    fields: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "status": status,
        "params": params,
        "flops": flops,
        "test_accuracy": value,
        "test_loss": test_loss if test_loss is not None else (None if value is None else 1 - value),
        "best_val_accuracy": max(val_curve) if val_curve else None,
        "train_seconds": train_seconds,
        "epochs_done": len(curve),
        "epochs_planned": epochs_planned,
        "stop_reason": stop_reason,
        "inference_ms_per_sample": 0.05 if value is not None else None,
        "curve": curve,
    }
    fields.update(overrides)
    return TrialResult(**fields)
