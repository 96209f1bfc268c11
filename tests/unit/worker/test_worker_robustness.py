"""worker.robustness on a real (tiny) trained Keras model: each score is the accuracy of the
model on ``core.data.corruptions.corrupt``'s copy (recomputed here in one piece), the copies
are cached per data seed and read back, and the chunk size changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.data.corruptions import corrupt
from core.spec import TrainingSpec
from tests.support.helpers import native_layers
from worker import robustness
from worker.datasets import Split, load_dataset, make_split
from worker.robustness import score_corruptions
from worker.training import EvaluationConfig, ModelConfig, TrialConfig, train_trial

pytestmark = pytest.mark.training  # fits a Keras model in this process

LAYERS = native_layers(
    {
        "name": "small",
        "layers": [
            {"type": "Conv2D", "filters": 6, "kernel_size": [3, 3], "activation": "relu"},
            {"type": "Flatten"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ],
    }
)
CELLS = [("gaussian_noise", 4), ("rotate", 2), ("stripe", 5)]


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    ds = load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"))
    return make_split(ds, test_split=0.2, validation_split=0.1, split_seed=0, max_samples=400)


@pytest.fixture(scope="module")
def model(split: Split) -> Any:
    box: dict[str, Any] = {}

    def keep(m: Any, s: Split, probs: np.ndarray | None) -> None:
        box["model"] = m

    train_trial(
        TrialConfig(
            ModelConfig(LAYERS, (8, 8, 1)),
            split,
            TrainingSpec(epochs=1, batch_size=32),
            seed=0,
            evaluation=EvaluationConfig(analyse=keep),
            warm_models=0,
        )
    )
    return box["model"]


def test_each_score_is_the_models_accuracy_on_the_corrupted_copy(
    split: Split, model: Any, tmp_path: Path
) -> None:
    scores, seconds = score_corruptions(
        model, split.x_test, split.y_test, CELLS, data_seed=7, cache_dir=tmp_path, batch_size=32
    )
    assert [(s.corruption, s.severity, s.n) for s in scores] == [
        (c, k, len(split.y_test)) for c, k in CELLS
    ]
    assert seconds > 0
    for s in scores:
        copy = corrupt(np.asarray(split.x_test), s.corruption, s.severity, data_seed=7)  # type: ignore[arg-type]
        probs = model.predict(copy, verbose=0)
        assert s.accuracy == pytest.approx(float(np.mean(probs.argmax(axis=1) == split.y_test)))
        p_true = probs[np.arange(len(split.y_test)), split.y_test]
        assert s.loss == pytest.approx(float(-np.log(np.clip(p_true, 1e-7, 1)).mean()), rel=1e-4)


def test_copies_are_cached_per_data_seed_and_read_back(
    split: Split, model: Any, tmp_path: Path
) -> None:
    first, _ = score_corruptions(
        model, split.x_test, split.y_test, CELLS, data_seed=3, cache_dir=tmp_path, batch_size=32
    )
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == len(CELLS)
    assert not list(tmp_path.glob("*.tmp*"))
    stamps = [f.stat().st_mtime_ns for f in files]
    for f in files:
        copy = np.load(f)
        assert copy.shape == split.x_test.shape
        assert copy.dtype == split.x_test.dtype
    again, _ = score_corruptions(
        model, split.x_test, split.y_test, CELLS, data_seed=3, cache_dir=tmp_path, batch_size=32
    )
    assert again == first
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not made again
    score_corruptions(
        model, split.x_test, split.y_test, CELLS[:1], data_seed=4, cache_dir=tmp_path, batch_size=8
    )
    assert len(list(tmp_path.glob("*.npy"))) == len(CELLS) + 1  # another seed, another copy


def test_the_chunk_size_changes_no_score(
    split: Split, model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, _ = score_corruptions(
        model,
        split.x_test,
        split.y_test,
        CELLS,
        data_seed=5,
        cache_dir=tmp_path / "a",
        batch_size=32,
    )
    monkeypatch.setattr(robustness, "CHUNK", 7)
    chunked, _ = score_corruptions(
        model,
        split.x_test,
        split.y_test,
        CELLS,
        data_seed=5,
        cache_dir=tmp_path / "b",
        batch_size=32,
    )
    assert [s.accuracy for s in chunked] == [s.accuracy for s in whole]
    for name in os.listdir(tmp_path / "a"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name)
        )
