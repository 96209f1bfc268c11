"""The baseline: the same trials in one plain Keras loop, as a careful user would script them.

Usage: ``python bench/plain_keras.py SPEC.json`` prints ``{"seconds": ..., "trials": ...}``.
Data loading and splitting happen before the clock starts (archbench's worker caches both
too); the clock covers building, compiling, fitting and evaluating every (variant, seed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plain_layer(keras: Any, spec: dict[str, Any]) -> Any:
    """The Keras layer for the few layer types the benchmarks use, written out by hand."""
    kind = spec["type"]
    if kind == "Conv2D":
        return keras.layers.Conv2D(
            spec["filters"], spec["kernel_size"], activation=spec.get("activation")
        )
    if kind == "MaxPooling2D":
        return keras.layers.MaxPooling2D(spec.get("pool_size", 2))
    if kind == "Flatten":
        return keras.layers.Flatten()
    if kind == "Dense":
        return keras.layers.Dense(spec["units"], activation=spec.get("activation"))
    if kind == "Dropout":
        return keras.layers.Dropout(spec["rate"])
    raise ValueError(f"the plain baseline does not write {kind} by hand")


def main(argv: list[str]) -> int:
    """Run the plain loop over the spec in argv[0] and print the timing as JSON."""
    spec = json.loads(Path(argv[0]).read_text())
    import keras

    from worker.datasets import load_dataset, make_split

    ds_ref = spec["dataset"]
    ds = load_dataset(ds_ref["name"], cache_dir=ROOT / ".archbench" / "datasets")
    split = make_split(
        ds,
        test_split=ds_ref.get("test_split", 0.2),
        validation_split=ds_ref.get("validation_split", 0.1),
        split_seed=ds_ref.get("split_seed", 0),
        max_samples=ds_ref.get("max_samples"),
    )
    training = spec.get("training", {})
    epochs, batch = training.get("epochs", 3), training.get("batch_size", 64)
    lr = training.get("learning_rate", 0.001)
    has_val = len(split.y_val) > 0
    t0 = time.perf_counter()
    per_trial = []
    for variant in spec["variants"]:
        for seed in spec.get("seeds", [0, 1, 2]):
            t_trial = time.perf_counter()
            keras.utils.set_random_seed(seed)
            model = keras.Sequential(
                [
                    keras.Input(ds.input_shape),
                    *(plain_layer(keras, layer) for layer in variant["layers"]),
                ]
            )
            model.compile(
                optimizer=keras.optimizers.Adam(lr),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            model.fit(
                split.x_train,
                split.y_train,
                batch_size=batch,
                epochs=epochs,
                validation_data=(split.x_val, split.y_val) if has_val else None,
                shuffle=True,
                verbose=0,
            )
            model.evaluate(split.x_test, split.y_test, batch_size=batch, verbose=0)
            per_trial.append(time.perf_counter() - t_trial)
    print(
        json.dumps(
            {"seconds": time.perf_counter() - t0, "trials": len(per_trial), "per_trial": per_trial}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
