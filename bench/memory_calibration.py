"""What a trial really needs in a worker, against what the submit counts (models.memory).

Each model is trained in a fresh process, the way a worker child trains a trial
(``worker.training.train_trial`` on a ``worker.datasets`` split, warm models on, the analysis'
predictions and Grams over the probe set), on random data of the model's input shape. The
process reads the kernel's peak RSS (``VmHWM``) three times: with TensorFlow imported and the
data loaded (the runtime), after training (the training step), and after the probe pass (its
peak reset before it). The table compares the peak of the whole trial with the estimate
``models.memory.trial_memory`` gives at submit, and the fitted factors that the constants in
models/memory.py come from.

    ../.venv/bin/python memory_calibration.py            # every model
    ../.venv/bin/python memory_calibration.py --models conv128,wide_dense
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.analysis import analyze_variant  # noqa: E402
from models.memory import (  # noqa: E402
    PARAM_COPIES,
    RUNTIME_BYTES,
    dataset_bytes,
    trial_memory,
)
from models.spec import parse_variant  # noqa: E402

MIB = 1024 * 1024


def _conv(filters: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Conv2D",
        "filters": filters,
        "kernel_size": [3, 3],
        "activation": "relu",
        **extra,
    }


def _head() -> list[dict[str, Any]]:
    return [{"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}]


def _gap_head() -> list[dict[str, Any]]:
    return [
        {"type": "GlobalAveragePooling2D"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]


def _residual() -> list[dict[str, Any]]:
    same = {"padding": "same"}
    return [
        {**_conv(32, **same), "name": "stem"},
        {**_conv(32, **same), "name": "c1"},
        {**_conv(32, **same), "name": "c2", "activation": "linear"},
        {"type": "Add", "name": "skip1", "inputs": ["stem", "c2"]},
        {"type": "ReLU", "name": "r1"},
        {**_conv(32, **same), "name": "c3"},
        {**_conv(32, **same), "name": "c4", "activation": "linear"},
        {"type": "Add", "name": "skip2", "inputs": ["r1", "c4"]},
        {"type": "ReLU", "name": "r2"},
        {"type": "GlobalAveragePooling2D", "name": "gap"},
        {"type": "Dense", "name": "out", "units": 10, "activation": "softmax"},
    ]


def _padding(times: int, pad: int) -> list[dict[str, Any]]:
    return [
        _conv(16, padding="same"),
        *({"type": "ZeroPadding2D", "padding": [pad, pad]} for _ in range(times)),
        _conv(8),
        *_gap_head(),
    ]


CONV64X3 = [
    _conv(64),
    _conv(64),
    _conv(64),
    {"type": "MaxPooling2D", "pool_size": [2, 2]},
    *_head(),
]

# name: (input shape, layers, batch size, probe size)
MODELS: dict[str, tuple[list[int], list[dict[str, Any]], int, int]] = {
    "conv128": ([28, 28, 1], [_conv(128), *_head()], 64, 256),
    "conv64x2": (
        [28, 28, 1],
        [_conv(64), _conv(64), {"type": "MaxPooling2D", "pool_size": [2, 2]}, *_head()],
        64,
        256,
    ),
    "conv64x3": ([28, 28, 1], CONV64X3, 64, 256),
    "wide_dense": (
        [28, 28, 1],
        [
            {"type": "Flatten"},
            {"type": "Dense", "units": 4096, "activation": "relu"},
            {"type": "Dense", "units": 4096, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
        128,
        256,
    ),
    "padding_heavy": ([28, 28, 1], _padding(10, 8), 64, 64),
    "padding_deep": ([16, 16, 1], _padding(24, 4), 32, 64),
    "residual": ([32, 32, 3], _residual(), 64, 256),
    "conv_64px": (
        [64, 64, 3],
        [_conv(32, padding="same") for _ in range(3)] + _gap_head(),
        32,
        128,
    ),
    "conv_bn": (
        [32, 32, 3],
        [
            _conv(64, padding="same"),
            {"type": "BatchNormalization"},
            _conv(64, padding="same"),
            {"type": "BatchNormalization"},
            {"type": "Dropout", "rate": 0.2},
            *_gap_head(),
        ],
        64,
        256,
    ),
    "deep_narrow": (
        [28, 28, 1],
        [_conv(16, padding="same") for _ in range(12)] + _gap_head(),
        64,
        256,
    ),
    "conv_heavy": (
        [64, 64, 1],
        [_conv(32, padding="same") for _ in range(3)] + _gap_head(),
        128,
        64,
    ),
    # What limits.py trains (5,000 examples, 2,372 of them to train on: the batch it found
    # for 4 GiB, 2,719, is that in effect).
    "conv64x3_b958": ([28, 28, 1], CONV64X3, 958, 256),
    "conv64x3_b2372": ([28, 28, 1], CONV64X3, 2372, 256),
    "big_probe": (
        [32, 32, 3],
        [_conv(64, padding="same"), _conv(64, padding="same"), *_gap_head()],
        32,
        2048,
    ),
}

SAMPLES = 640  # per model: about 450 to train on (a few steps), the test set and the probe
LARGE = 5000  # the two rows limits.py measured: conv64x3 at the batch 2 and 4 GiB admit
SAMPLES_OF = {"conv64x3_b958": LARGE, "conv64x3_b2372": LARGE}

CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def reset():
    Path("/proc/self/clear_refs").write_text("5")

import keras  # noqa: F401  (the runtime a worker child has before its first trial)
from core.spec import AnalysisSpec, TrainingSpec
from models.spec import parse_variant
from worker.analysis import analyse_model
from worker.datasets import Dataset, make_split
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial

shape, layers, batch, probe, samples = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.random((samples, *shape), dtype=np.float32)
y = np.arange(samples) % 10
ds = Dataset("random", x, y, 10, tuple(shape))
split = make_split(ds, test_split=0.2 if probe <= 128 else 0.45, validation_split=0.05,
                   split_seed=0, probe_size=probe, design="per_seed")
reset()
runtime = hwm()
box = {}
def analyse(model, s, probs):
    box["train"] = hwm()
    reset()
    out = analyse_model(model, s, AnalysisSpec(probe_size=probe), batch_size=batch, probs=probs)
    box["probe"] = hwm()
    box["probe_size"] = out.probe_size
    return out
t0 = time.perf_counter()
train_trial(TrialConfig(
    ModelConfig(parse_variant({"name": "m", "layers": layers}).layers, tuple(shape)), split,
    TrainingSpec(epochs=1, batch_size=batch), seed=0,
    evaluation=EvaluationConfig(predict_test=True, analyse=analyse), warm_models=1))
print(json.dumps({"runtime": runtime, **box, "seconds": time.perf_counter() - t0}))
"""


def run_child(
    shape: list[int], layers: list[dict[str, Any]], batch: int, probe: int, samples: int
) -> dict[str, Any]:
    """One trial's peaks (bytes: ``runtime``, ``train``, ``probe``), in a fresh process: a
    worker child's first trial, on ``samples`` random examples of ``shape``."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([shape, layers, batch, probe, samples])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return row


def measure(name: str) -> dict[str, Any]:
    """One calibration model's peaks."""
    shape, layers, batch, probe = MODELS[name]
    return run_child(shape, layers, batch, probe, SAMPLES_OF.get(name, SAMPLES))


def estimate(name: str, probe_size: int) -> dict[str, Any]:
    """What the submit counts for the model (models.memory), by part."""
    shape, layers, batch, _ = MODELS[name]
    variant = parse_variant({"name": name, "layers": layers})
    _, _, analysis = analyze_variant(variant, input_shape=tuple(shape), batch_size=batch)
    need = trial_memory(
        analysis,
        batch_size=batch,
        probe_size=probe_size,
        dataset=dataset_bytes(
            SAMPLES_OF.get(name, SAMPLES), SAMPLES_OF.get(name, SAMPLES), tuple(shape)
        ),
    )
    acts = analysis.activations
    assert acts is not None
    return {
        "need": need,
        "activations": acts.total_bytes_per_batch,
        "alive": acts.peak_bytes_per_sample * probe_size,
        "params": analysis.params,
    }


def table(measured: dict[str, dict[str, Any]]) -> float:
    """Print the measured peaks against the estimates; returns the worst ratio (either way)."""
    print(
        "| model | layer outputs per batch | parameters | runtime | measured peak | estimate "
        "| estimate / measured | training step above runtime and weights / outputs |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 1.0
    for name, got in measured.items():
        est = estimate(name, int(got["probe_size"]))
        peak = max(got["train"], got["probe"])
        weights = PARAM_COPIES * 4 * est["params"]
        step = (got["train"] - got["runtime"] - weights) / max(est["activations"], 1)
        ratio = est["need"].total / peak
        worst = max(worst, ratio, 1 / ratio)
        print(
            f"| {name} | {est['activations'] / MIB:,.0f} MiB | {est['params']:,} "
            f"| {got['runtime'] / MIB:,.0f} MiB | {peak / MIB:,.0f} MiB "
            f"| {est['need'].total / MIB:,.0f} MiB | {ratio:.2f} | {step:.2f} |"
        )
    print(f"runtime counted {RUNTIME_BYTES / MIB:.0f} MiB; worst ratio {worst:.2f} (target <= 1.5)")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--json", type=Path, help="also write the measured peaks here")
    parser.add_argument(
        "--rows", type=Path, help="compare peaks measured earlier (--json) instead of training"
    )
    args = parser.parse_args(argv)
    if args.rows:
        measured = {r["model"]: r for r in json.loads(args.rows.read_text())}
    else:
        measured = {}
        for name in args.models.split(","):
            measured[name] = measure(name)
            print(f"{name}: {measured[name]}", flush=True)
            if args.json:  # after each model, so a long run keeps what it measured
                rows = [{"model": n, **r} for n, r in measured.items()]
                args.json.write_text(json.dumps(rows, indent=1))
    return 0 if table(measured) <= 1.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
