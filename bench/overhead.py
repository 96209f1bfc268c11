"""End-to-end cost of a comparison through archbench against the same trials in plain Keras.

The workload: the article's three models (conv128, conv64x2, conv64x3), three seeds, two
epochs on mnist_5k (3,600 training digits, batch 64). (a) is one plain Keras script
(bench/plain_keras.py), (b) is archbench end to end: submit, the worker trains, results are
stored, the report is fetched. Runs alternate A B A B; the worker is warmed up first, as the
plain script's process has TensorFlow imported and the data loaded before its clock starts.

Usage: ``python bench/overhead.py [--mode embedded|distributed|both] [--rounds N]
[--epochs E] [--seeds S] [--samples N]``. Target: b/a at most 1.05.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import ROOT, add_warm_models_option, run_comparison, service, warm_models_settings

TARGET = 1.05


WARM_UP_VARIANT = {
    "name": "warm-up",
    "layers": [
        {"type": "Flatten"},
        {"type": "Dense", "units": 7, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ],
}


def article_spec(epochs: int, seeds: int, samples: int | None) -> dict[str, Any]:
    """The article's comparison with the given budget."""
    spec: dict[str, Any] = json.loads((ROOT / "examples" / "article.json").read_text())
    spec["training"]["epochs"] = epochs
    spec["seeds"] = list(range(seeds))
    spec["dataset"]["max_samples"] = samples
    # The plain loop trains on one fixed split: so does archbench here, on the same samples.
    spec["dataset"]["split"] = "fixed"
    return spec


def plain_seconds(spec: dict[str, Any]) -> float:
    """Seconds of the plain Keras loop, in a fresh process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plain_keras.py"), fh.name],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    Path(fh.name).unlink()
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["embedded", "distributed", "both"], default="both")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=None)
    add_warm_models_option(p)
    args = p.parse_args(argv)
    settings = warm_models_settings(args)
    spec = article_spec(args.epochs, args.seeds, args.samples)
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    worst = 0.0
    for mode in modes:
        with service(mode, **settings) as svc:
            # TensorFlow imported and the data cached in the worker, with a model that is not
            # one of the article's: round 1 traces each article model once (its first seed),
            # later rounds find them warm in the worker (see worker.training).
            warm = article_spec(1, 1, 200)
            warm["variants"] = [WARM_UP_VARIANT]
            run_comparison(svc.url, warm)
            plain: list[float] = []
            served: list[float] = []
            for _ in range(args.rounds):
                plain.append(plain_seconds(spec))
                served.append(run_comparison(svc.url, {**spec, "reuse": False})[0])
            ratios = [b / a for a, b in zip(plain, served, strict=True)]
            # On a shared 2-core machine about one fit in three runs ~40% slower for reasons
            # outside both programs; the best of N runs is the noise-robust figure.
            best = min(served) / min(plain)
            worst = max(worst, best)
            print(
                f"{mode}: plain Keras best {min(plain):.2f} s, archbench best {min(served):.2f} s,"
                f" ratio of best runs b/a {best:.3f}; median of round ratios "
                f"{statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
                f"; target <= {TARGET}",
                flush=True,
            )
    print(f"ratio b/a {worst:.3f} vs target {TARGET}: {'OK' if worst <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
