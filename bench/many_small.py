"""Per-trial bookkeeping: many tiny trials through archbench against the same trials in a loop.

60 tiny trials (a few hundred samples, one epoch, a small dense network: 6 variants x 10
seeds) are trained (a) in one plain Keras loop and (b) through archbench end to end. The
difference divided by the number of trials is what archbench adds per trial: queueing,
claiming, database writes, evaluation bookkeeping. Ray Tune's published figure is about
144 ms per trial; the target here is under 20 ms.

Usage: ``python bench/many_small.py [--mode embedded|distributed] [--trials 60] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _harness import add_warm_models_option, run_comparison, service, warm_models_settings
from overhead import WARM_UP_VARIANT, plain_seconds

TARGET_MS = 20.0


def tiny_spec(trials: int, samples: int) -> dict[str, Any]:
    """``trials`` tiny trials: six small dense variants, trials/6 seeds each."""
    variants = [
        {
            "name": f"mlp{units}",
            "layers": [
                {"type": "Flatten"},
                {"type": "Dense", "units": units, "activation": "relu"},
                {"type": "Dense", "units": 10, "activation": "softmax"},
            ],
        }
        for units in (8, 12, 16, 24, 32, 48)
    ]
    return {
        "name": "many small trials",
        "dataset": {
            "name": "mnist_5k",
            "max_samples": samples,
            "validation_split": 0.1,
            "test_split": 0.2,
        },
        "training": {"epochs": 1, "batch_size": 32},
        "seeds": list(range(max(1, trials // len(variants)))),
        "variants": variants,
        "reuse": False,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the per-trial overhead."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["embedded", "distributed"], default="distributed")
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    add_warm_models_option(p)
    args = p.parse_args(argv)
    settings = warm_models_settings(args)
    spec = tiny_spec(args.trials, args.samples)
    n = len(spec["variants"]) * len(spec["seeds"])
    with service(args.mode, **settings) as svc:
        # TensorFlow imported and the data cached, with a model outside the workload: round 1
        # traces each variant once (its first seed), later rounds find all of them warm.
        warm_up = tiny_spec(6, args.samples)
        warm_up["variants"] = [WARM_UP_VARIANT]
        run_comparison(svc.url, {**warm_up, "name": "warm-up", "seeds": [0]})
        plain, served = [], []
        for _ in range(args.rounds):
            plain.append(plain_seconds(spec))
            served.append(run_comparison(svc.url, spec)[0])
    per_trial = [(b - a) / n * 1000 for a, b in zip(plain, served, strict=True)]
    # The best of N runs is the noise-robust figure (see overhead.py); rounds are shown too.
    ms = (min(served) - min(plain)) / n * 1000
    verdict = (
        f"{-ms:.1f} ms per trial less than the plain loop"
        if ms < 0
        else f"{ms:.1f} ms per trial more than the plain loop"
    )
    print(
        f"{args.mode}: {n} trials; plain loop best {min(plain):.2f} s, archbench best "
        f"{min(served):.2f} s (archbench/plain {min(served) / min(plain):.2f}x); {verdict} "
        f"(rounds: {', '.join(f'{x:+.1f}' for x in per_trial)} ms); target < {TARGET_MS:.0f} ms "
        f"more: {'met' if ms < TARGET_MS else 'missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
