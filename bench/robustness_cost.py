"""What robustness with the default subset adds to the article's trial time.

The workload: examples/article.json's three models (conv128, conv64x2, conv64x3), its budget
(3 epochs, batch 64) on mnist_5k's per-seed split (1,000 test digits), each trained as the
worker trains a trial (``train_trial`` with the default analysis: predictions and Grams).
Then, on each trained model, the robustness scoring the worker adds with the default subset
for grey images (6 corruptions at severity 3: 6 copies of the test set): the first
variant of a seed makes the copies (``cold``, a fresh cache), the others read them back
(``warm``). Per seed the added time is one cold and two warm scorings; the ratio divides it
by the seed's three trial times. Target: at most 1.25 (25% added).

Usage: ``python bench/robustness_cost.py [--seeds N] [--epochs E] [--samples N]``. In
process, one model at a time; run it when the machine is quiet, and read the ratio, not the
absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.corruptions import DEFAULT_SEVERITIES, default_corruptions
from core.spec import AnalysisSpec, TrainingSpec
from models.spec import parse_variant
from worker.analysis import analyse_model
from worker.datasets import Split, load_dataset, make_split
from worker.robustness import score_corruptions
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.25


def _trial(variant: dict[str, Any], split: Split, training: TrainingSpec, seed: int) -> Any:
    """Train one trial as the worker does; (seconds, the trained model)."""
    box: dict[str, Any] = {}
    analysis = AnalysisSpec(probe_size=min(256, len(split.y_test)))

    def analyse(model: Any, s: Split, probs: Any) -> Any:
        box["model"] = model
        return analyse_model(model, s, analysis, batch_size=training.batch_size, probs=probs)

    layers = parse_variant({**variant, "input_shape": [28, 28, 1]}).layers
    assert layers is not None
    t0 = time.perf_counter()
    train_trial(
        TrialConfig(
            ModelConfig(layers, (28, 28, 1), name=variant["name"]),
            split,
            training,
            seed=seed,
            evaluation=EvaluationConfig(measure_inference=True, predict_test=True, analyse=analyse),
            warm_models=0,
        )
    )
    return time.perf_counter() - t0, box["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None, help="max_samples (quick runs)")
    args = parser.parse_args()
    spec = json.loads((ROOT / "examples" / "article.json").read_text())
    training = TrainingSpec.model_validate(spec["training"])
    if args.epochs is not None:
        training = training.model_copy(update={"epochs": args.epochs})
    d = spec["dataset"]
    cells = [(c, s) for c in default_corruptions(1) for s in DEFAULT_SEVERITIES]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = load_dataset("mnist_5k", cache_dir=Path(tmp) / "datasets")
        for seed in range(args.seeds):
            split = make_split(
                ds,
                test_split=d["test_split"],
                validation_split=d["validation_split"],
                split_seed=d["split_seed"],
                max_samples=args.samples,
                design="per_seed",
                seed=seed,
                probe_size=min(256, (args.samples or 5000) // 5),
            )
            trial_s, added_s = 0.0, 0.0
            for i, variant in enumerate(spec["variants"]):
                seconds, model = _trial(variant, split, training, seed)
                _, scoring = score_corruptions(
                    model,
                    split.x_test,
                    split.y_test,
                    cells,
                    data_seed=seed,
                    cache_dir=Path(tmp) / "corruptions",
                    batch_size=training.batch_size,
                )
                kind = "cold" if i == 0 else "warm"
                print(
                    f"seed {seed} {variant['name']:>9}: trial {seconds:6.1f} s, robustness "
                    f"({kind}, {len(cells)} copies of {len(split.y_test)}) {scoring:5.1f} s"
                )
                trial_s += seconds
                added_s += scoring
            ratios.append((trial_s + added_s) / trial_s)
            print(f"seed {seed}: trials {trial_s:.1f} s, robustness adds {added_s:.1f} s")
    ratio = statistics.median(ratios)
    verdict = "within" if ratio <= TARGET else "OVER"
    print(f"with/without robustness (median over seeds): {ratio:.3f} ({verdict} {TARGET})")


if __name__ == "__main__":
    main()
