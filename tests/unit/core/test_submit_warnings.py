"""Warnings at submit (core.trials.advice through validate_comparison): too few seeds for a
test, an output without softmax before a probability loss, a long estimated run."""

from __future__ import annotations

from typing import Any

from core.config import Settings
from core.datasets import BUILTIN_DATASETS
from core.spec import ComparisonSpec
from core.trials.validation import validate_comparison
from tests.support.helpers import small_mlp, tiny_spec


def _warnings(spec: dict[str, Any]) -> list[dict[str, Any]]:
    validated = validate_comparison(ComparisonSpec.model_validate(spec), Settings())
    return [dict(w) for w in validated.warnings]


def test_a_sound_comparison_has_none() -> None:
    assert _warnings(tiny_spec("ok", seeds=[0, 1, 2], variants=[small_mlp()])) == []


def test_too_few_seeds_and_no_softmax() -> None:
    logits = small_mlp() | {"name": "logits"}
    logits["layers"] = [*logits["layers"][:-1], {"type": "Dense", "units": 10}]
    dropped = small_mlp() | {"name": "dropped"}
    dropped["layers"] = [*dropped["layers"], {"type": "Dropout", "rate": 0.1}]  # still softmax
    spec = tiny_spec("few", seeds=[0, 1], variants=[small_mlp(), logits, dropped])
    assert _warnings(spec) == [
        {
            "loc": ["body", "seeds"],
            "msg": "2 seed(s) per variant: a pair is tested from 3 seeds, so the report will "
            "rank the variants but test no pair; give at least 3, e.g. [0, 1, 2]",
        },
        {
            "loc": ["body", "variants", 1, "layers", 2],
            "msg": "variant 'logits' ends in activation 'linear', but the loss "
            "sparse_categorical_crossentropy reads probabilities: give the last layer "
            '"activation": "softmax"',
        },
    ]
    scheduled = tiny_spec("sched", variants=[small_mlp()])
    scheduled["seeds"] = {"min": 2, "max": 2}
    assert [w["loc"] for w in _warnings(scheduled)] == [["body", "seeds", "max"]]


def test_a_long_run_gets_its_estimate() -> None:
    wide = small_mlp() | {"name": "wide"}
    wide["layers"][1]["units"] = 2048
    spec = tiny_spec("long", seeds=list(range(10)), epochs=50, samples=100_000, variants=[wide])
    spec["dataset"]["name"] = "mnist"
    (warning,) = _warnings(spec)
    # Recomputed here: multiply-adds of Flatten -> Dense(2048) -> Dense(10) on 28x28, three per
    # training step, over the training part of mnist's 70,000 samples.
    flops = 784 * 2048 + 2048 * 10
    samples = round(BUILTIN_DATASETS["mnist"].samples * 0.8 * 0.9)
    hours = 3 * flops * samples * 50 * 10 / 2e10 / 3600
    assert warning["loc"] == ["body"]
    assert warning["msg"].startswith(
        f"about {hours:,.1f} hours of training on one worker: 10 trials of 50 epochs over "
        f"{samples:,} samples, estimated from the variants' FLOPs at 20 GFLOP/s"
    )
