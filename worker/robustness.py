"""Every trained model scored on corrupted copies of its test set (``core.data.corruptions``).

Run by the trial's evaluation (``worker.tasks`` adds it to the analysis), after the clean test
scores, on the trained model; the scores are stored with the trial's result, in the same
transaction (``worker.analysis.store_analysis``), one row per (corruption, severity).

The copies: the copy under (corruption, severity) of a trial's test set depends only on the
test set, the data seed, the corruption and the severity, so the variants of a seed are
scored on identical corrupted examples. Each copy is generated once per data seed and kept
on the worker's disk (``<data_dir>/corruptions``, one ``.npy`` per copy, named by a hash of
the test set and the seed), so the other variants of that seed read it back instead of
generating it again; it is written to a temporary name and renamed into place, so two
workers making the same copy at once leave one whole file.

Bounded memory: a copy is generated ``CHUNK`` images at a time into a memory-mapped file and
scored ``CHUNK`` images at a time from it; only one chunk and its predictions are in memory,
whatever the test set's size.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from core.data.corruptions import Corruption, iter_corrupted

__all__ = ["CHUNK", "CorruptionScore", "corrupted_copy", "score_corruptions", "test_set_key"]

CHUNK = 2048
"""Images generated, and then scored, at a time."""


@dataclass(frozen=True)
class CorruptionScore:
    """A model's scores on one corrupted copy of its test set."""

    corruption: str
    severity: int
    accuracy: float
    loss: float | None
    n: int


def test_set_key(x_test: np.ndarray) -> str:
    """A name for the test set's contents (its shape, dtype and bytes)."""
    digest = hashlib.sha256(f"{x_test.shape}:{x_test.dtype}".encode())
    digest.update(np.ascontiguousarray(x_test).tobytes())
    return digest.hexdigest()[:32]


def corrupted_copy(
    cache_dir: Path,
    x_test: np.ndarray,
    corruption: str,
    severity: int,
    *,
    data_seed: int,
    key: str | None = None,
) -> np.ndarray:
    """The copy of ``x_test`` under (corruption, severity) for ``data_seed``, memory-mapped
    from the cache (made first when it is not there)."""
    key = key or test_set_key(x_test)
    path = cache_dir / f"{key}-{data_seed}-{corruption}-{severity}.npy"
    if path.exists():
        found = np.load(path, mmap_mode="r")
        if found.shape == x_test.shape and found.dtype == x_test.dtype:
            return cast(np.ndarray, found)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=x_test.dtype, shape=x_test.shape)
    at = 0
    name = cast(Corruption, corruption)
    for part in iter_corrupted(x_test, name, severity, data_seed=data_seed, chunk=CHUNK):
        out[at : at + len(part)] = part
        at += len(part)
    out.flush()
    del out
    os.replace(tmp, path)
    return cast(np.ndarray, np.load(path, mmap_mode="r"))


def _loss(probs: np.ndarray, y: np.ndarray) -> float | None:
    """The summed cross-entropy of the labels, when the outputs are probabilities."""
    if probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        return None  # logits: no probability to read a loss from
    p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-7, 1.0)
    return float(-np.log(p).sum())


def score_corruptions(
    model: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cells: Sequence[tuple[str, int]],
    *,
    data_seed: int,
    cache_dir: Path,
    batch_size: int,
) -> tuple[list[CorruptionScore], float]:
    """The model's accuracy and mean cross-entropy on each (corruption, severity) copy of
    the test set, and the seconds it took."""
    t0 = time.perf_counter()
    x = x_test if x_test.ndim == 4 else x_test[..., None]
    y = np.asarray(y_test, dtype=np.int64)
    key = test_set_key(x)
    out = []
    for corruption, severity in cells:
        copy = corrupted_copy(cache_dir, x, corruption, severity, data_seed=data_seed, key=key)
        correct, loss = 0, 0.0
        has_loss = True
        for begin in range(0, len(y), CHUNK):
            part = np.asarray(copy[begin : begin + CHUNK]).reshape((-1, *x_test.shape[1:]))
            probs = np.asarray(model.predict(part, batch_size=batch_size, verbose=0))
            labels = y[begin : begin + CHUNK]
            correct += int((probs.argmax(axis=1) == labels).sum())
            part_loss = _loss(probs, labels)
            has_loss = has_loss and part_loss is not None
            loss += part_loss or 0.0
        n = len(y)
        out.append(
            CorruptionScore(
                corruption=corruption,
                severity=severity,
                accuracy=correct / n if n else 0.0,
                loss=loss / n if n and has_loss else None,
                n=n,
            )
        )
    return out, time.perf_counter() - t0
