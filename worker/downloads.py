"""The Keras downloads (mnist, fashion_mnist, cifar10): found in the pre-seeded cache, else
downloaded with ``keras.utils.get_file`` (the same origins and hashes Keras uses), then read
without running any pickle code (worker.datasets scales and pools what these return).

Keras is imported only to download.
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from worker.datasets import DatasetError

__all__ = ["ORIGINS", "load_cifar10", "load_fashion", "load_mnist"]

_KERAS_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# Origins and hashes exactly as keras/src/datasets/{mnist,fashion_mnist,cifar10}.py use them.
# Module-level so tests can point them at an unreachable address.
ORIGINS: dict[str, str] = {
    "mnist": _KERAS_BASE + "mnist.npz",
    "fashion_mnist": _KERAS_BASE,
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}
_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_FASHION_SUBDIR = "datasets/fashion-mnist"  # Keras's own cache layout under cache_dir
_CIFAR_TARGET = "cifar-10-batches-py-target"  # Keras's extraction folder name
_CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


def _find(cache_dir: Path, *relative: str) -> Path | None:
    """The first of ``relative`` that exists under ``cache_dir``."""
    for rel in relative:
        p = cache_dir / rel
        if p.exists():
            return p
    return None


def _fetch(
    name: str,
    cache_dir: Path,
    fname: str,
    origin: str,
    *,
    cache_subdir: str,
    file_hash: str | None = None,
    extract: bool = False,
    seed_hint: str,
) -> Path:
    """Download with ``keras.utils.get_file`` into ``cache_dir``, or raise DatasetError."""
    import keras

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = keras.utils.get_file(
            fname,
            origin=origin,
            file_hash=file_hash,
            cache_dir=str(cache_dir),
            cache_subdir=cache_subdir,
            extract=extract,
        )
    except (Exception, KeyboardInterrupt) as e:
        raise DatasetError(
            f"could not download {name} into {cache_dir}: {e}; pre-seed the cache with {seed_hint}"
        ) from e
    return Path(path)


def load_mnist(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    path = _find(cache_dir, "mnist.npz", "datasets/mnist.npz") or _fetch(
        "mnist",
        cache_dir,
        "mnist.npz",
        ORIGINS["mnist"],
        cache_subdir="datasets",
        file_hash=_MNIST_SHA256,
        seed_hint="mnist.npz",
    )
    try:
        with np.load(path, allow_pickle=False) as f:
            x = np.concatenate([f["x_train"], f["x_test"]])
            y = np.concatenate([f["y_train"], f["y_test"]])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DatasetError(f"mnist: cannot read {path}: {e}") from e
    return _check_images("mnist", x, y, (28, 28))


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_fashion(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    paths: list[Path] = []
    for fname in _FASHION_FILES:
        found = _find(cache_dir, f"fashion-mnist/{fname}", f"{_FASHION_SUBDIR}/{fname}")
        paths.append(
            found
            or _fetch(
                "fashion_mnist",
                cache_dir,
                fname,
                ORIGINS["fashion_mnist"] + fname,
                cache_subdir=_FASHION_SUBDIR,
                seed_hint=f"{_FASHION_SUBDIR}/{{{','.join(_FASHION_FILES)}}}",
            )
        )
    try:
        y_train, y_test = _read_idx(paths[0], 8), _read_idx(paths[2], 8)
        x_train = _read_idx(paths[1], 16).reshape(len(y_train), 28, 28)
        x_test = _read_idx(paths[3], 16).reshape(len(y_test), 28, 28)
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"fashion_mnist: cannot read the files in {cache_dir}: {e}") from e
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    return _check_images("fashion_mnist", x, y, (28, 28))


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only (what CIFAR batches hold)."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        """Resolve only the numpy globals needed to rebuild an array."""
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        d = _ArraysOnlyUnpickler(f, encoding="bytes").load()
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(d["labels"], dtype=np.int64)


def load_cifar10(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = _find(
        cache_dir,
        "cifar-10-batches-py",
        f"datasets/{_CIFAR_TARGET}/cifar-10-batches-py",
        "datasets/cifar-10-batches-py",
    )
    if folder is None:
        folder = (
            _fetch(
                "cifar10",
                cache_dir,
                _CIFAR_TARGET,
                ORIGINS["cifar10"],
                cache_subdir="datasets",
                file_hash=_CIFAR10_SHA256,
                extract=True,
                seed_hint="cifar-10-batches-py/ (the extracted cifar-10-python.tar.gz)",
            )
            / "cifar-10-batches-py"
        )
    xs, ys = [], []
    try:
        for batch in _CIFAR_BATCHES:
            x, y = _load_cifar_batch(folder / batch)
            xs.append(x)
            ys.append(y)
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
        raise DatasetError(f"cifar10: cannot read {folder}: {e}") from e
    return _check_images("cifar10", np.concatenate(xs), np.concatenate(ys), (32, 32, 3))


def _check_images(
    name: str, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    if x.shape[1:] != shape or len(x) != len(y) or len(y) == 0:
        raise DatasetError(f"{name}: unexpected shapes {x.shape} and {y.shape}")
    if y.min() < 0 or y.max() > 9:
        raise DatasetError(f"{name}: labels outside 0..9")
    return x, y
