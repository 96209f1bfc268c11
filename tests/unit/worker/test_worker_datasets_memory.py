"""worker.datasets holds a uint8 dataset as float32 only: no float64 copy on the way (an
upload grew 12x in the worker: ``x / 255.0`` is float64, then a float32 copy of it)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from worker.datasets import clear_caches, load_dataset, unit_float32

T = TypeVar("T")


def _peak(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()`` and the most bytes it held at once beyond what existed before (tracemalloc
    sees NumPy's buffers)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_uint8_scales_to_float32_in_place_of_the_result_only() -> None:
    x = np.random.default_rng(0).integers(0, 256, (3000, 28, 28), dtype=np.uint8)  # 2.4 MB
    out, peak = _peak(lambda: unit_float32(x))
    assert out.dtype == np.float32
    assert out.shape == x.shape
    assert peak < 1.2 * out.nbytes  # the float32 result and one chunk (float64: 3x)
    np.testing.assert_array_equal(out, (x / 255.0).astype(np.float32))


def test_every_uint8_value_scales_as_the_double_division_rounded_to_float32() -> None:
    v = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(unit_float32(v), (v / 255.0).astype(np.float32))


def test_an_uploaded_uint8_dataset_loads_within_its_float32_size(tmp_path: Path) -> None:
    """Train and test parts, (N, H, W) images: pooled into one float32 array with a channel
    axis, each part written into its rows; what else is held is the uint8 read of the file
    (a quarter of the result) and the labels."""
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (2500, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (500, 28, 28), dtype=np.uint8)
    y_train, y_test = np.arange(2500) % 10, np.arange(500) % 10
    np.savez(
        tmp_path / "abc-123.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )
    clear_caches()
    try:
        ds, peak = _peak(
            lambda: load_dataset("upload:abc-123", cache_dir=tmp_path, upload_dir=tmp_path)
        )
    finally:
        clear_caches()
    assert ds.x.dtype == np.float32
    assert ds.x.shape == (3000, 28, 28, 1)
    assert peak < 1.5 * ds.x.nbytes  # was over 3x: a float64 copy, a float32 one, the concat
    expected = (np.concatenate([x_train, x_test]) / 255.0).astype(np.float32)[..., None]
    np.testing.assert_array_equal(ds.x, expected)
    np.testing.assert_array_equal(ds.y, np.concatenate([y_train, y_test]))
