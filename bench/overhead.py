"""End-to-end cost of a comparison through archbench against the same trials in plain Keras.

The workload: the article's three models (conv128, conv64x2, conv64x3), three seeds, two
epochs on mnist_5k (3,600 training digits, batch 64). (a) is one plain Keras script
(bench/plain_keras.py), (b) is archbench end to end: submit, the worker trains, results are
stored, the report is fetched. Runs alternate A B A B; the worker is warmed up first, as the
plain script's process has TensorFlow imported and the data loaded before its clock starts.

Usage: ``python bench/overhead.py [--mode embedded|distributed|both] [--rounds N]
[--epochs E] [--seeds S] [--samples N]``. Target: b/a at most 1.05.

``--analysis-cost`` measures instead what "do they differ?" costs: the same
comparison through archbench with ``"analysis"`` off and on (predictions and per-layer Grams
over the default probe), rounds alternating on one service; target on/off at most 1.05. It
then trains one trial of each article model per fresh process, analysis off and on, and
prints each process's peak RSS (the worker's peak memory per trial) and the analysis' own
peak of NumPy memory (tracemalloc).
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


def warm_up_spec() -> dict[str, Any]:
    """One trial of a model that is not the article's, on its data: TensorFlow imported and the
    data cached in the worker before anything is timed."""
    spec = article_spec(1, 1, 200)
    spec["variants"] = [WARM_UP_VARIANT]
    spec.pop("baseline", None)  # the article's baseline is not the warm-up's variant
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


ANALYSIS_OFF = {"predictions": False, "similarity": False}

_ONE_TRIAL = r"""
import json, resource, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from core.spec import AnalysisSpec, TrainingSpec
from models.spec import parse_variant
from worker.analysis import analyse_model
from worker.datasets import load_dataset, make_split
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial
spec = json.loads(sys.argv[2]); on = sys.argv[3] == "on"
d = spec["dataset"]
ds = load_dataset(d["name"], cache_dir=__import__("pathlib").Path(sys.argv[4]))
split = make_split(ds, test_split=d["test_split"], validation_split=d["validation_split"],
                   split_seed=d["split_seed"], max_samples=d.get("max_samples"),
                   probe_size=AnalysisSpec().probe_size)
variant = parse_variant(spec["variants"][0])
box = {}
def analyse(model, s, probs):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = analyse_model(model, s, AnalysisSpec(), batch_size=spec["training"]["batch_size"],
                        probs=probs)
    box["seconds"] = time.perf_counter() - t0
    box["numpy_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out
r = train_trial(TrialConfig(
    ModelConfig(variant.layers, tuple(ds.input_shape)), split,
    TrainingSpec.model_validate(spec["training"]), seed=0,
    evaluation=EvaluationConfig(measure_inference=True, predict_test=on,
                                analyse=analyse if on else None),
    warm_models=1))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if on:  # the next seed on this worker process: the model is warm, its predict traced
    from worker.keras_objects import scores_from
    from worker.warm_models import PROCESS_MODELS
    model = PROCESS_MODELS.models()[0]
    bs = spec["training"]["batch_size"]
    training = TrainingSpec.model_validate(spec["training"])
    # The evaluation as analysis-off runs it, against the one predict pass analysis-on runs
    # (the predict pass is the evaluation then: the extra is the Grams and the rest).
    t0 = time.perf_counter()
    model.evaluate(split.x_test, split.y_test, batch_size=bs, verbose=0)
    box["evaluate_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    probs = model.predict(split.x_test, batch_size=bs, verbose=0)
    scores_from(model, training, int(probs.shape[1]), split.y_test, probs)
    box["predict_scores_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyse_model(model, split, AnalysisSpec(), batch_size=bs, probs=probs)
    box["warm_seconds"] = time.perf_counter() - t0
print(json.dumps({"peak_rss_kib": peak, "train_seconds": r.train_seconds, **box}))
"""


def trial_memory(spec: dict[str, Any]) -> None:
    """Peak RSS of one trial per article model, analysis off and on, each in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        for variant in spec["variants"]:
            one = {**spec, "variants": [variant]}
            row = {}
            for on in ("off", "on"):
                out = subprocess.run(
                    [sys.executable, "-c", _ONE_TRIAL, str(ROOT), json.dumps(one), on, cache],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                row[on] = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{variant['name']}: peak RSS per trial, analysis off "
                f"{row['off']['peak_rss_kib'] / 1024:.0f} MiB, on "
                f"{row['on']['peak_rss_kib'] / 1024:.0f} MiB; the analysis took "
                f"{row['on']['seconds']:.2f} s on the trial's first seed and "
                f"{row['on']['warm_seconds']:.2f} s on a later one (warm model), against "
                f"{row['on']['train_seconds']:.2f} s of training (+"
                f"{100 * row['on']['seconds'] / row['on']['train_seconds']:.1f}% / +"
                f"{100 * row['on']['warm_seconds'] / row['on']['train_seconds']:.1f}%); "
                f"NumPy peak {row['on']['numpy_peak'] / 2**20:.1f} MiB; evaluate "
                f"{row['on']['evaluate_seconds']:.2f} s against predict + scores "
                f"{row['on']['predict_scores_seconds']:.2f} s",
                flush=True,
            )


def analysis_cost(args: Any, spec: dict[str, Any], settings: dict[str, str]) -> int:
    """archbench with the analysis off and on, alternating; then the memory per trial."""
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    worst = 0.0
    for mode in modes:
        with service(mode, **settings) as svc:
            run_comparison(svc.url, warm_up_spec())
            off: list[float] = []
            on: list[float] = []
            for _ in range(args.rounds):
                off.append(
                    run_comparison(svc.url, {**spec, "reuse": False, "analysis": ANALYSIS_OFF})[0]
                )
                on.append(run_comparison(svc.url, {**spec, "reuse": False})[0])
            best = min(on) / min(off)
            worst = max(worst, best)
            ratios = ", ".join(f"{b / a:.3f}" for a, b in zip(off, on, strict=True))
            print(
                f"{mode}: analysis off best {min(off):.2f} s, on best {min(on):.2f} s, ratio of "
                f"best runs on/off {best:.3f} (rounds: {ratios}); target <= {TARGET}",
                flush=True,
            )
    print(f"ratio on/off {worst:.3f} vs target {TARGET}: {'OK' if worst <= TARGET else 'MISSED'}")
    trial_memory(spec)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["embedded", "distributed", "both"], default="both")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument(
        "--analysis-cost",
        action="store_true",
        help="archbench with the analysis off against on, and the peak memory per trial",
    )
    p.add_argument(
        "--trials-only",
        action="store_true",
        help="only the per-trial part of --analysis-cost (peak memory, analysis seconds)",
    )
    add_warm_models_option(p)
    args = p.parse_args(argv)
    settings = warm_models_settings(args)
    spec = article_spec(args.epochs, args.seeds, args.samples)
    if args.trials_only:
        trial_memory(spec)
        return 0
    if args.analysis_cost:
        return analysis_cost(args, spec, settings)
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    worst = 0.0
    for mode in modes:
        with service(mode, **settings) as svc:
            # TensorFlow imported and the data cached in the worker, with a model that is not
            # one of the article's: round 1 traces each article model once (its first seed),
            # later rounds find them warm in the worker (see worker.training).
            run_comparison(svc.url, warm_up_spec())
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
