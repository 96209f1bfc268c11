"""The largest trial the default limits admit, counted at submit and measured in a worker.

The default limits admit at most ``max_variants`` x ``max_seeds`` trials per comparison, each
up to ``ARCHBENCH_MAX_TRIAL_MEMORY_MB`` as counted at submit (core.trials.admission). This
finds, for the article's widest model (conv64x3 on mnist_5k, similarity on at the default
probe), the largest batch size the default settings admit, then trains one trial of it in a
fresh process the way a worker child does (bench/memory_calibration.py) and compares the
worker's peak RSS with the submit-time estimate (target: within 1.5x).

``--fraction`` scales the limit down (the batch that the limit times the fraction admits), so
the measurement fits a shared machine: the estimate is linear in the batch above the
runtime, so the ratio at a fraction is the ratio at the limit.

Stored reports (a report's first computation and a stored report's GET latency) are not in
this branch; their timing is left to the stored-reports benchmark.

    ../.venv/bin/python limits.py --fraction 0.25
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from memory_calibration import MODELS, run_child  # noqa: E402

from core.config import Settings  # noqa: E402
from core.datasets import BUILTIN_DATASETS  # noqa: E402
from core.errors import InvalidInput  # noqa: E402
from core.spec import ComparisonSpec  # noqa: E402
from core.trials.admission import MIB, memory_limit_mb, trial_need  # noqa: E402
from core.trials.validation import validate_comparison  # noqa: E402

MODEL = "conv64x3"
SAMPLES = 5000  # mnist_5k, as the worker holds it


def spec(batch: int) -> ComparisonSpec:
    layers = MODELS[MODEL][1]
    return ComparisonSpec.model_validate(
        {
            "name": "limits",
            "dataset": {"name": "mnist_5k", "test_split": 0.2},
            "training": {"batch_size": batch, "epochs": 1},
            "variants": [{"name": MODEL, "layers": layers}],
            "seeds": [0],
        }
    )


def admitted(batch: int, settings: Settings) -> bool:
    try:
        validate_comparison(spec(batch), settings)
    except InvalidInput:
        return False
    return True


def largest_batch(settings: Settings) -> int:
    """The largest batch size the settings admit (bisection; admission is monotone in it)."""
    lo, hi = 1, 65536
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if admitted(mid, settings):
            lo = mid
        else:
            hi = mid - 1
    return lo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=1.0, help="of the memory limit")
    args = parser.parse_args(argv)
    defaults = Settings(database_url="sqlite://")
    limit = memory_limit_mb(defaults)
    settings = Settings(
        database_url="sqlite://", max_trial_memory_mb=max(256, int(limit * args.fraction))
    )
    if not admitted(1, settings):
        print(f"{settings.max_trial_memory_mb:,} MiB admits no trial of {MODEL}; raise --fraction")
        return 2
    batch = largest_batch(settings)
    validated = validate_comparison(spec(batch), settings)
    variant = validated.spec.variants[0]
    need, _ = trial_need(
        spec(batch), BUILTIN_DATASETS["mnist_5k"], variant, validated.analyses[variant.name]
    )
    print(
        f"default limits: {defaults.max_variants} variants x {defaults.max_seeds} seeds per "
        f"comparison, {limit:,} MiB per trial; measured at {args.fraction:g} of it "
        f"({settings.max_trial_memory_mb:,} MiB)"
    )
    print(f"{MODEL}: largest admitted batch {batch:,}; estimate {need.total / MIB:,.0f} MiB")
    shape, layers, _, _ = MODELS[MODEL]
    got: dict[str, Any] = run_child(shape, layers, batch, 256, SAMPLES)
    peak = max(got["train"], got["probe"])
    ratio = need.total / peak
    print(
        f"worker peak {peak / MIB:,.0f} MiB (training {got['train'] / MIB:,.0f}, probe pass "
        f"{got['probe'] / MIB:,.0f}, runtime {got['runtime'] / MIB:,.0f}); "
        f"estimate / measured {ratio:.2f} (target within 1.5x)"
    )
    print("stored-report timing: skipped (stored reports are not in this branch)")
    return 0 if 1 / 1.5 <= ratio <= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
