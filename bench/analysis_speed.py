"""Time ``models.analyze`` on a 50-layer stack and a 200-node graph (residual blocks with
projection shortcuts and concatenations) and print each ratio against the 5 ms target.

Usage: ``python bench/analysis_speed.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import analyze, parse_variant
from models.spec import Layer

TARGET_MS = 5.0


def fifty_layers() -> list[Layer]:
    """Return a valid 50-layer convolutional spec for (64, 64, 3) inputs and 10 classes."""
    block = [
        {"type": "Conv2D", "filters": 32, "kernel_size": 3, "padding": "same"},
        {"type": "BatchNormalization"},
        {"type": "ReLU"},
        {"type": "SeparableConv2D", "filters": 32, "kernel_size": 3, "padding": "same"},
        {"type": "Activation", "activation": "gelu"},
        {"type": "Dropout", "rate": 0.1},
    ]
    layers = block * 7 + [
        {"type": "MaxPooling2D", "pool_size": 2},
        {"type": "GlobalAveragePooling2D"},
        {"type": "Dropout", "rate": 0.2},
        {"type": "Dense", "units": 64, "activation": "relu"},
        {"type": "LayerNormalization"},
        {"type": "Dense", "units": 32, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
        {"type": "Activation", "activation": "linear"},
    ]
    variant = parse_variant({"name": "bench50", "layers": layers})
    if variant.layers is None or len(variant.layers) != 50:
        raise RuntimeError("the benchmark spec must have 50 layers")
    return list(variant.layers)


def graph_200() -> list[Layer]:
    """Return a valid 200-node graph for (64, 64, 3) inputs and 10 classes: 22 residual
    blocks of 9 nodes (two convolutions, their normalization, a 1x1 projection, an Add, a
    Concatenate of the block's input and output...), a stem and a head."""
    layers: list[dict[str, object]] = [
        {"type": "Conv2D", "name": "stem", "filters": 8, "kernel_size": 3, "padding": "same"}
    ]
    last = "stem"
    for b in range(22):
        p = f"b{b}_"
        layers += [
            {"type": "Conv2D", "name": p + "c1", "inputs": [last], "filters": 8,
             "kernel_size": 3, "padding": "same"},
            {"type": "BatchNormalization", "name": p + "bn1"},
            {"type": "ReLU", "name": p + "r1"},
            {"type": "Conv2D", "name": p + "c2", "filters": 8, "kernel_size": 3,
             "padding": "same"},
            {"type": "BatchNormalization", "name": p + "bn2"},
            {"type": "Conv2D", "name": p + "proj", "inputs": [last], "filters": 8,
             "kernel_size": 1},
            {"type": "Add", "name": p + "add", "inputs": [p + "proj", p + "bn2"]},
            {"type": "Concatenate", "name": p + "cat", "inputs": [p + "add", last]},
            {"type": "Conv2D", "name": p + "mix", "filters": 8, "kernel_size": 1},
        ]  # fmt: skip
        last = p + "mix"
    layers += [
        {"type": "GlobalAveragePooling2D", "inputs": [last]},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    variant = parse_variant({"name": "bench200", "layers": layers})
    if variant.layers is None or len(variant.layers) != 201:
        raise RuntimeError("the benchmark graph must have 201 nodes")
    return list(variant.layers)


def _time(layers: list[Layer], repeat: int) -> list[float]:
    analyze(layers, (64, 64, 3), num_classes=10)  # warm up
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        analyze(layers, (64, 64, 3), num_classes=10)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print ms per analysis and the ratio vs the target."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="timed analyses (default 2000)")
    args = parser.parse_args(argv)
    for label, layers in (("50 layers", fifty_layers()), ("200-node graph", graph_200())):
        times = _time(layers, args.repeat)
        median = statistics.median(times)
        print(
            f"analyze, {label}: {median:.3f} ms per analysis (median of {len(times)};"
            f" best {min(times):.3f} ms, what a busy machine does not preempt)"
        )
        print(f"ratio vs target: {median / TARGET_MS:.2f}x (target {TARGET_MS:g} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
