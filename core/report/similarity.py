"""The stored analysis of a comparison's trials: predictions and per-layer Gram matrices.

What the worker stores (worker.analysis), how big it is (``analysis_bytes``, checked at
submit), and how the api and the report read it back: prediction rows for
``GET .../predictions``, ``TrialPredictions`` for ``core.report.differences``, and layer-by-layer
CKA matrices for ``GET .../similarity`` and the report's "last hidden layer" figures.

Which layers are analysed: every layer of the variant except those whose output is their
input rearranged or, at inference, unchanged (``SKIPPED_LAYER_TYPES``: Flatten, Reshape,
the dropouts and the augmentation layers); their CKA would repeat the previous layer's. The
last analysed layer is the output layer; the one before it is the "last hidden layer" of the report.

Memory: the similarity of two variants is computed one seed pair at a time (two trials'
Grams, float32, in memory at once); the seed-to-seed baseline of a variant uses consecutive
seeds (s1 with s2, s2 with s3, ...), so a comparison with k seeds reads 3 (k - 1) trial pairs.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.report.cka import cka_matrix, packed_bytes, unpack_gram
from core.report.differences import TrialPredictions
from core.status import TrialStatus
from core.store.db import session_scope
from core.store.table_reads import TRIAL_ORDER, TrialKey, trials_after
from core.store.tables import Trial, TrialLayerGram, TrialPrediction
from models.spec import AUGMENTATION_TYPES

__all__ = [
    "PREDICTION_COLUMNS",
    "SKIPPED_LAYER_TYPES",
    "analysed_layer_types",
    "analysis_bytes",
    "decode_predictions",
    "encode_predictions",
    "last_hidden_cka",
    "load_predictions",
    "prediction_rows",
    "probe_hash",
    "similarity",
]

SKIPPED_LAYER_TYPES = (
    frozenset({"Flatten", "Reshape", "Dropout", "SpatialDropout2D"}) | AUGMENTATION_TYPES
)
PREDICTION_COLUMNS = ["trial_id", "variant", "seed", "example", "label", "predicted", "p_true"]
_PREDICTION_ROW_BYTES = 8 + 4 + 4  # example id (int64), label and predicted (int32)


def analysed_layer_types(layers: Sequence[Mapping[str, Any]]) -> list[str]:
    """The types of a normalised variant's layers that get a Gram matrix, in order."""
    return [str(x["type"]) for x in layers if x.get("type") not in SKIPPED_LAYER_TYPES]


def analysis_bytes(
    *,
    n_test: int,
    num_classes: int,
    layers: Sequence[Mapping[str, Any]],
    predictions: bool,
    probe_size: int,
) -> int:
    """Bytes one trial's analysis takes in the database (``probe_size`` 0: no similarity)."""
    total = n_test * (_PREDICTION_ROW_BYTES + 2 * num_classes) if predictions else 0
    if probe_size > 0:
        total += len(analysed_layer_types(layers)) * packed_bytes(probe_size)
    return total


def probe_hash(probe_index: npt.ArrayLike) -> str:
    """Names a probe set by its example ids: Grams are compared only over the same examples."""
    ids = np.ascontiguousarray(np.asarray(probe_index, dtype="<i8"))
    return hashlib.sha256(ids.tobytes()).hexdigest()


# --------------------------------------------------------------------------- predictions


def encode_predictions(
    trial_id: str,
    examples: npt.ArrayLike,
    labels: npt.ArrayLike,
    probs: npt.ArrayLike,
) -> TrialPrediction:
    """The stored row of one trial's predictions (``probs``: n x classes probabilities)."""
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be n x classes, not {p.shape}")
    ex = np.asarray(examples, dtype="<i8")
    y = np.asarray(labels, dtype="<i4")
    if not len(ex) == len(y) == len(p):
        raise ValueError("examples, labels and probabilities differ in length")
    return TrialPrediction(
        trial_id=trial_id,
        n=len(y),
        num_classes=int(p.shape[1]),
        examples=ex.tobytes(),
        labels=y.tobytes(),
        predicted=np.argmax(p, axis=1).astype("<i4").tobytes(),
        probs=p.astype("<f2").tobytes(),
    )


def decode_predictions(
    row: TrialPrediction,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], np.ndarray]:
    """(examples, labels, predicted, probs as float32) of a stored row."""
    examples = np.frombuffer(row.examples, dtype="<i8").astype(np.int64)
    labels = np.frombuffer(row.labels, dtype="<i4").astype(np.int64)
    predicted = np.frombuffer(row.predicted, dtype="<i4").astype(np.int64)
    probs = np.frombuffer(row.probs, dtype="<f2").astype(np.float32).reshape(row.n, row.num_classes)
    return examples, labels, predicted, probs


def _p_true(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    out: np.ndarray = probs[np.arange(len(labels)), labels].astype(np.float64)
    return out


def _with_predictions(comparison_id: str, variant: str | None, *columns: Any) -> Select[Any]:
    """``columns`` of the succeeded trials that stored predictions, in the tables' order."""
    q = (
        select(*columns)
        .select_from(Trial)
        .join(TrialPrediction, TrialPrediction.trial_id == Trial.analysis_key)
        .where(Trial.comparison_id == comparison_id, Trial.status == TrialStatus.SUCCEEDED)
        .order_by(*TRIAL_ORDER)
    )
    return q if variant is None else q.where(Trial.variant == variant)


def _trials_with_predictions(
    session: Session, comparison_id: str, variant: str | None = None
) -> list[tuple[str, str, int, str]]:
    """(trial id, variant, seed, the ``trial_id`` of its stored predictions)."""
    q = _with_predictions(
        comparison_id, variant, Trial.id, Trial.variant, Trial.seed, Trial.analysis_key
    )
    return [(t, v, int(s), k) for t, v, s, k in session.execute(q)]


def prediction_rows(comparison_id: str, variant: str | None = None) -> Iterator[dict[str, Any]]:
    """One row per (trial, test example), one trial's arrays in memory at a time. Each trial
    is read in a short session of its own (the next one after the last read, in the tables'
    order), closed before its rows are yielded: no pooled connection is held while they are
    sent."""
    after: TrialKey | None = None
    while True:
        with session_scope() as session:
            q = _with_predictions(comparison_id, variant, *TRIAL_ORDER, Trial.variant)
            if after is not None:
                q = q.where(trials_after(after))
            found = session.execute(q.add_columns(TrialPrediction).limit(1)).first()
            if found is None:
                return
            variant_index, seed, trial_id, name, stored = found
            examples, labels, predicted, probs = decode_predictions(stored)
        after = (int(variant_index), int(seed), str(trial_id))
        p_true = _p_true(labels, probs)
        for e, y, p, q_true in zip(
            examples.tolist(), labels.tolist(), predicted.tolist(), p_true.tolist(), strict=True
        ):
            yield {
                "trial_id": trial_id,
                "variant": name,
                "seed": int(seed),
                "example": e,
                "label": y,
                "predicted": p,
                "p_true": round(q_true, 4),
            }


def load_predictions(session: Session, comparison_id: str) -> list[TrialPredictions]:
    """Every succeeded trial's predictions, for ``core.report.differences``."""
    out = []
    for trial_id, name, seed, key in _trials_with_predictions(session, comparison_id):
        row = session.get(TrialPrediction, key)
        if row is None:
            continue
        examples, labels, predicted, probs = decode_predictions(row)
        session.expunge(row)
        out.append(
            TrialPredictions(
                trial_id=trial_id,
                variant=name,
                seed=seed,
                examples=examples,
                labels=labels,
                predicted=predicted,
                p_true=_p_true(labels, probs),
                confidence=probs.max(axis=1).astype(np.float64),
            )
        )
    return out


# --------------------------------------------------------------------------- similarity


def _gram_trials(session: Session, comparison_id: str, variant: str) -> dict[int, str]:
    """seed -> the ``trial_id`` of the stored Grams (its own, or the trained trial's it
    reuses), for the variant's succeeded trials that have Grams."""
    rows = session.execute(
        select(Trial.seed, Trial.analysis_key)
        .where(
            Trial.comparison_id == comparison_id,
            Trial.variant == variant,
            Trial.status == TrialStatus.SUCCEEDED,
            Trial.analysis_key.in_(select(TrialLayerGram.trial_id).distinct()),
        )
        .order_by(Trial.seed)
    )
    return {int(s): t for s, t in rows}


def _grams(session: Session, trial_id: str) -> tuple[list[str], list[np.ndarray], str | None, int]:
    rows = session.execute(
        select(
            TrialLayerGram.layer,
            TrialLayerGram.gram,
            TrialLayerGram.probe_hash,
            TrialLayerGram.probe_size,
        )
        .where(TrialLayerGram.trial_id == trial_id)
        .order_by(TrialLayerGram.layer_index)
    ).all()
    names = [r.layer for r in rows]
    vectors = [unpack_gram(r.gram, r.probe_size).astype(np.float32) for r in rows]
    probe = rows[0].probe_hash if rows else None
    size = int(rows[0].probe_size) if rows else 0
    return names, vectors, probe, size


class _Mean:
    """A running mean of equally shaped matrices, NaN-aware."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count: np.ndarray | None = None

    def add(self, m: np.ndarray) -> None:
        ok = np.isfinite(m)
        if self.total is None or self.count is None:
            self.total = np.zeros(m.shape)
            self.count = np.zeros(m.shape)
        if self.total.shape != m.shape:
            return  # a trial with other layers (cannot happen within a variant)
        self.total += np.where(ok, m, 0.0)
        self.count += ok

    def value(self) -> list[list[float | None]] | None:
        if self.total is None or self.count is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / self.count
        return [[None if not np.isfinite(x) else round(float(x), 4) for x in r] for r in mean]


def _within(session: Session, seeds: Mapping[int, str]) -> tuple[_Mean, list[str]]:
    mean = _Mean()
    names: list[str] = []
    ordered = [seeds[s] for s in sorted(seeds)]
    for x, y in itertools.pairwise(ordered):
        nx, gx, hx, _ = _grams(session, x)
        _, gy, hy, _ = _grams(session, y)
        if hx is None or hx != hy:
            continue
        names = nx
        m = cka_matrix(gx, gy)
        mean.add((m + m.T) / 2)  # seed order is arbitrary: symmetric
    return mean, names


def similarity(session: Session, comparison_id: str, a: str, b: str) -> dict[str, Any]:
    """Layer-by-layer CKA of ``a`` against ``b`` averaged over paired seeds, and each
    variant's own seed-to-seed matrix (consecutive seeds), as ``GET .../similarity`` answers."""
    seeds_a = _gram_trials(session, comparison_id, a)
    seeds_b = _gram_trials(session, comparison_id, b)
    paired = sorted(set(seeds_a) & set(seeds_b))
    between = _Mean()
    layers_a: list[str] = []
    layers_b: list[str] = []
    probe_size = 0
    used: list[int] = []
    for s in paired:
        na, ga, ha, size = _grams(session, seeds_a[s])
        nb, gb, hb, _ = _grams(session, seeds_b[s])
        if ha is None or ha != hb:
            continue
        layers_a, layers_b, probe_size = na, nb, size
        between.add(cka_matrix(ga, gb))
        used.append(s)
    within_a, names_a = _within(session, seeds_a)
    within_b, names_b = _within(session, seeds_b)
    if not layers_a and names_a:
        layers_a = names_a
    if not layers_b and names_b:
        layers_b = names_b
    return {
        "a": a,
        "b": b,
        "layers_a": layers_a,
        "layers_b": layers_b,
        "cka": between.value(),
        "within_a": within_a.value(),
        "within_b": within_b.value(),
        "probe_size": probe_size,
        "seeds": used,
    }


def _last_hidden_gram(session: Session, trial_id: str) -> tuple[np.ndarray, str] | None:
    """The packed Gram of a trial's last hidden layer (the one before the output layer)."""
    rows = session.execute(
        select(TrialLayerGram.layer_index)
        .where(TrialLayerGram.trial_id == trial_id)
        .order_by(TrialLayerGram.layer_index.desc())
        .limit(2)
    ).all()
    if len(rows) < 2:
        return None
    row = session.execute(
        select(TrialLayerGram.gram, TrialLayerGram.probe_size, TrialLayerGram.probe_hash).where(
            TrialLayerGram.trial_id == trial_id, TrialLayerGram.layer_index == rows[1][0]
        )
    ).one()
    return unpack_gram(row.gram, row.probe_size).astype(np.float32), row.probe_hash


def _cka_of(x: tuple[np.ndarray, str] | None, y: tuple[np.ndarray, str] | None) -> float | None:
    if x is None or y is None or x[1] != y[1]:
        return None
    value = float(cka_matrix([x[0]], [y[0]])[0, 0])
    return value if np.isfinite(value) else None


def last_hidden_cka(
    session: Session, comparison_id: str, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, float | None]]:
    """For each pair, the CKA of the two last hidden layers (the layer before the output)
    between the variants (mean over paired seeds) and between consecutive seeds of each, for
    ``core.report.differences``; one layer per trial is read."""
    cache: dict[str, tuple[np.ndarray, str] | None] = {}

    def gram(trial_id: str) -> tuple[np.ndarray, str] | None:
        if trial_id not in cache:
            cache[trial_id] = _last_hidden_gram(session, trial_id)
        return cache[trial_id]

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(float(np.mean(present)), 4) if present else None

    def within(seeds: Mapping[int, str]) -> float | None:
        ordered = [seeds[s] for s in sorted(seeds)]
        return mean([_cka_of(gram(x), gram(y)) for x, y in itertools.pairwise(ordered)])

    out: dict[tuple[str, str], dict[str, float | None]] = {}
    for a, b in pairs:
        seeds_a = _gram_trials(session, comparison_id, a)
        seeds_b = _gram_trials(session, comparison_id, b)
        paired = sorted(set(seeds_a) & set(seeds_b))
        out[(a, b)] = {
            "cka": mean([_cka_of(gram(seeds_a[s]), gram(seeds_b[s])) for s in paired]),
            "within_a": within(seeds_a),
            "within_b": within(seeds_b),
        }
    return out
