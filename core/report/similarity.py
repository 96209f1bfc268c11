"""The stored analysis of a comparison's trials: predictions and per-layer Gram matrices.

What the worker stores (worker.analysis), how big it is (``analysis_bytes``, checked at
submit), and how the api and the report read it back: prediction rows for
``GET .../predictions``, ``TrialPredictions`` for ``core.report.differences``, and layer-by-layer
CKA matrices for ``GET .../similarity`` and the report's "last hidden layer" figures.

Which layers are analysed: every layer of the variant except those whose output is their
input rearranged or, at inference, unchanged (``SKIPPED_LAYER_TYPES``: Flatten, Reshape,
the dropouts and the augmentation layers); their CKA would repeat the previous layer's. The
last analysed layer is the output layer; the one before it is the "last hidden layer" of the report.

The within-variant baseline (``within_a``/``within_b``) is the control of
``core.report.controls``: a variant's trial against its replicate at the same data seed (same
split and order, another initialisation) when the comparison has replicates, else every pair
of its seeds. Negative CKA values (chance, for unrelated layers) are averaged as they are.

Memory: the similarity of two variants is computed one seed pair at a time (two trials'
Grams, float32, in memory at once); a variant's baseline over every pair of its seeds keeps
each of its trials' Grams once, read once (k seeds: k trials' Grams in memory).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.report.cka import cka_matrix, packed_bytes, unpack_gram
from core.report.controls import jackknife_mean
from core.report.differences import TrialPredictions
from core.status import TrialStatus
from core.store.db import session_scope
from core.store.table_reads import TRIAL_ORDER, TrialKey, trials_after
from core.store.tables import Trial, TrialLayerGram, TrialPrediction
from models.augmentation import AUGMENTATION_TYPES

__all__ = [
    "PREDICTION_COLUMNS",
    "PROBABILITIES_COLUMN",
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
PREDICTION_COLUMNS = [
    "trial_id",
    "variant",
    "seed",
    "example",
    "label",
    "predicted",
    "p_true",
    "confidence",
]
PROBABILITIES_COLUMN = "probabilities"  # the full vector, on request (``full``)
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
) -> list[tuple[str, str, int, int, str]]:
    """(trial id, variant, seed, replicate, the ``trial_id`` of its stored predictions: its
    own, or the trained trial's it reuses)."""
    q = _with_predictions(
        comparison_id,
        variant,
        Trial.id,
        Trial.variant,
        Trial.seed,
        Trial.replicate,
        Trial.analysis_key,
    )
    return [(t, v, int(s), int(r or 0), k) for t, v, s, r, k in session.execute(q)]


def prediction_rows(
    comparison_id: str, variant: str | None = None, *, full: bool = False
) -> Iterator[dict[str, Any]]:
    """One row per (trial, test example), one trial's arrays in memory at a time. Each trial
    is read in a short session of its own (the next one after the last read, in the tables'
    order), closed before its rows are yielded: no pooled connection is held while they are
    sent. ``p_true`` and ``confidence`` (the top class's probability) are the stored values
    unrounded, those ``load_predictions`` gives the report's ECE and NLL; ``full`` adds
    ``probabilities``, the whole vector."""
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
        p_true, top = _p_true(labels, probs).tolist(), probs.max(axis=1).tolist()
        vectors = probs.tolist() if full else None
        for i, (e, y, p) in enumerate(
            zip(examples.tolist(), labels.tolist(), predicted.tolist(), strict=True)
        ):
            row = {
                "trial_id": trial_id,
                "variant": name,
                "seed": int(seed),
                "example": e,
                "label": y,
                "predicted": p,
                "p_true": p_true[i],
                "confidence": top[i],
            }
            if vectors is not None:
                row[PROBABILITIES_COLUMN] = vectors[i]
            yield row


def load_predictions(session: Session, comparison_id: str) -> list[TrialPredictions]:
    """Every succeeded trial's predictions (replicates included), for
    ``core.report.differences``."""
    out = []
    for trial_id, name, seed, replicate, key in _trials_with_predictions(session, comparison_id):
        row = session.get(TrialPrediction, key)
        if row is None:
            continue
        examples, labels, predicted, probs = decode_predictions(row)
        if row in session:  # read through ShortReads, the row is detached already
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
                replicate=replicate,
            )
        )
    return out


# --------------------------------------------------------------------------- similarity


@dataclass(frozen=True)
class _GramTrials:
    """A variant's succeeded trials that have Grams, each by the ``trial_id`` of its stored
    Grams (its own, or the trained trial's it reuses): its trial by seed, its replicates by
    seed."""

    main: dict[int, str]
    replicates: dict[int, list[str]]

    def control(self) -> tuple[str, list[tuple[tuple[int, ...], str, str]]]:
        """The within-variant pairs of trial ids, each with the seeds it involves, and their
        kind (``core.report.controls``): the trial and its replicate at the same data seed
        when there are replicates, else every pair of seeds."""
        if any(self.replicates.get(s) for s in self.main):
            pairs: list[tuple[tuple[int, ...], str, str]] = [
                ((s,), t, r) for s, t in self.main.items() for r in self.replicates.get(s, ())
            ]
            return "replicates", pairs
        seeds = sorted(self.main)
        return "seeds", [
            ((s, u), self.main[s], self.main[u]) for s, u in itertools.combinations(seeds, 2)
        ]


def _gram_trials(session: Session, comparison_id: str, variant: str) -> _GramTrials:
    rows = session.execute(
        select(Trial.seed, Trial.replicate, Trial.analysis_key)
        .where(
            Trial.comparison_id == comparison_id,
            Trial.variant == variant,
            Trial.status == TrialStatus.SUCCEEDED,
            Trial.analysis_key.in_(select(TrialLayerGram.trial_id).distinct()),
        )
        .order_by(Trial.seed, Trial.replicate)
    )
    main: dict[int, str] = {}
    replicates: dict[int, list[str]] = {}
    for seed, replicate, trial_id in rows:
        if replicate:
            replicates.setdefault(int(seed), []).append(trial_id)
        else:
            main[int(seed)] = trial_id
    return _GramTrials(main, replicates)


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


def _within(session: Session, trials: _GramTrials) -> tuple[_Mean, list[str], str]:
    """The variant's mean CKA matrix over its control's pairs, its layers, the control."""
    mean = _Mean()
    names: list[str] = []
    kind, pairs = trials.control()
    cache: dict[str, tuple[list[str], list[np.ndarray], str | None, int]] = {}

    def grams(trial_id: str) -> tuple[list[str], list[np.ndarray], str | None, int]:
        # Every pair of seeds reads each trial k - 1 times: each is read once.
        if trial_id not in cache:
            cache[trial_id] = _grams(session, trial_id)
        return cache[trial_id]

    for _, x, y in pairs:
        nx, gx, hx, _ = grams(x)
        _, gy, hy, _ = grams(y)
        if hx is None or hx != hy:
            continue
        names = nx
        m = cka_matrix(gx, gy)
        mean.add((m + m.T) / 2)  # which of the two is first is arbitrary: symmetric
    return mean, names, kind


def similarity(session: Session, comparison_id: str, a: str, b: str) -> dict[str, Any]:
    """Layer-by-layer CKA of ``a`` against ``b`` averaged over paired seeds, and each
    variant's own matrix over its control's pairs (``control``: its trial against its
    replicate at each seed, or every pair of its seeds without replicates), as
    ``GET .../similarity`` answers."""
    trials_a = _gram_trials(session, comparison_id, a)
    trials_b = _gram_trials(session, comparison_id, b)
    seeds_a, seeds_b = trials_a.main, trials_b.main
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
    within_a, names_a, kind_a = _within(session, trials_a)
    within_b, names_b, kind_b = _within(session, trials_b)
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
        "control": "replicates" if "replicates" in (kind_a, kind_b) else "seeds",
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
) -> dict[tuple[str, str], dict[str, Any]]:
    """For each pair, the CKA of the two last hidden layers (the layer before the output), for
    ``core.report.differences``: between the variants, the mean over paired seeds with its
    95% interval over seeds (``core.report.controls.jackknife_mean``), and within each
    variant, the mean over its control's pairs (its trial against its replicates at the same
    data seed, or without replicates every pair of its seeds). Negative values are averaged
    as they are. One layer per trial is read, once."""
    cache: dict[str, tuple[np.ndarray, str] | None] = {}

    def gram(trial_id: str) -> tuple[np.ndarray, str] | None:
        if trial_id not in cache:
            cache[trial_id] = _last_hidden_gram(session, trial_id)
        return cache[trial_id]

    def present(values: Sequence[tuple[tuple[int, ...], float | None]]) -> list[Any]:
        return [(k, v) for k, v in values if v is not None]

    def within(trials: _GramTrials) -> float | None:
        _, control = trials.control()
        mean, _ = jackknife_mean(present([(k, _cka_of(gram(x), gram(y))) for k, x, y in control]))
        return None if mean is None else round(mean, 4)

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for a, b in pairs:
        trials_a = _gram_trials(session, comparison_id, a)
        trials_b = _gram_trials(session, comparison_id, b)
        paired = sorted(set(trials_a.main) & set(trials_b.main))
        values = [((s,), _cka_of(gram(trials_a.main[s]), gram(trials_b.main[s]))) for s in paired]
        mean, ci = jackknife_mean(present(values))
        out[(a, b)] = {
            "cka": None if mean is None else round(mean, 4),
            "ci95": None if ci is None else [round(x, 4) for x in ci],
            "within_a": within(trials_a),
            "within_b": within(trials_b),
        }
    return out
