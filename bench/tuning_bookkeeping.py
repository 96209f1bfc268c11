"""Time the tuning stage's bookkeeping per tuning trial and print the ratio against 50 ms.

What a tuning trial costs besides its training: the variant's study is rebuilt from its stored
tuning trials (``core.tuning.search.rebuild``), asked for the next configuration, and the
configuration is stored. This times the first two over 1..N stored trials (TPE, a 3-knob space,
each stored trial with 3 per-epoch scores, as the worker writes them) and the pruner's check
after an epoch (median and successive halving), and prints the worst and the median per ask.
The store is one INSERT, timed by ``many_small.py``'s per-trial figure.

Usage: ``python bench/tuning_bookkeeping.py [--trials N] [--sampler tpe|random|grid]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.tuning.search import Observation, should_prune, suggest
from core.tuning_space import TuningSpec

TARGET_MS = 50.0


def _spec(sampler: str, trials: int, pruner: str | None = None) -> TuningSpec:
    space: dict[str, object] = {
        "learning_rate": {"log_uniform": [1e-4, 1e-1]},
        "momentum": {"uniform": [0.0, 0.95]},
        "batch_size": {"choice": [32, 64, 128]},
    }
    if sampler == "grid":
        space = {
            "learning_rate": {"choice": [10.0**-k for k in range(1, 6)]},
            "momentum": {"choice": [0.0, 0.5, 0.9, 0.95]},
            "batch_size": {"choice": [16, 32, 64, 128, 256, 512]},
        }
    return TuningSpec.model_validate(
        {"space": space, "trials": trials, "sampler": sampler, "pruner": pruner}
    )


def _score(params: dict[str, object]) -> float:
    lr = params["learning_rate"]
    assert isinstance(lr, float)
    return 0.95 - 0.1 * abs(math.log10(lr) + 2.0)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print ms per ask and per prune check, and the ratio vs 50 ms."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100, help="tuning trials (default 100)")
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid"])
    args = parser.parse_args(argv)
    spec = _spec(args.sampler, args.trials)
    stored: list[Observation] = []
    asks = []
    for _ in range(args.trials):
        start = time.perf_counter()
        params = suggest(spec, stored, seed=1)
        asks.append((time.perf_counter() - start) * 1000)
        value = _score(params)
        stored.append(Observation(params, "complete", value, {1: value - 0.2, 2: value - 0.1}))
    prunes = {}
    for pruner in ("median", "successive_halving"):
        pspec = _spec(args.sampler, args.trials, pruner)
        start = time.perf_counter()
        should_prune(pspec, stored[:-1], stored[-1].params, {1: 0.5}, seed=1)
        prunes[pruner] = (time.perf_counter() - start) * 1000
    worst, median = max(asks), statistics.median(asks)
    print(
        f"{args.sampler}, {args.trials} tuning trials: ask median {median:.1f} ms, "
        f"at {args.trials - 1} stored {asks[-1]:.1f} ms, worst {worst:.1f} ms"
    )
    for pruner, ms in prunes.items():
        print(f"prune check ({pruner}) at {args.trials - 1} stored: {ms:.1f} ms")
    print(f"ratio (ask at the last trial / {TARGET_MS:.0f} ms target): {asks[-1] / TARGET_MS:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
