"""What a trial records for "do they differ?" once it is trained, before its result
is committed: its test-set predictions and, per layer, the centered Gram matrix of the layer's
activations over the comparison's probe set (what linear CKA needs, see core.report.cka); and
its scores on corrupted copies of the test set when the comparison asks for robustness
(computed by worker.robustness, stored here with the rest).

Run by worker.training right after the evaluation, on the trained model; stored by
worker.tasks in the same transaction as the trial's result (``store_analysis``), so a worker
killed before that commit leaves nothing, and a retried commit replaces rather than adds.

Bounded memory: the probe set goes through the model one layer at a time (the layers are
called in the model's topological order, in chunks, with ``training=False``), so only the
activations still to be read are held (for a stack, a layer's input and output: 2 x
probe_size x width float32; for a graph, also the outputs a later merge reads) plus one
probe_size x probe_size Gram matrix. Which layers:
``core.report.similarity.SKIPPED_LAYER_TYPES``.

TensorFlow and Keras are imported inside functions only (see worker.training).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.report.cka import pack_gram
from core.report.similarity import SKIPPED_LAYER_TYPES, encode_predictions, probe_hash
from core.spec import AnalysisSpec
from core.store.tables import TrialLayerGram
from worker.datasets import Split
from worker.robustness import CorruptionScore

__all__ = ["AnalysisResult", "LayerGram", "analyse_model", "store_analysis"]

_BATCH = 128


@dataclass
class LayerGram:
    """One analysed layer: its position among the model's layers, name, type and packed Gram."""

    index: int
    name: str
    kind: str
    gram: bytes


@dataclass
class AnalysisResult:
    """A trained model's predictions on the test set and Grams over the probe set."""

    examples: np.ndarray | None = None
    labels: np.ndarray | None = None
    probs: np.ndarray | None = None
    grams: list[LayerGram] = field(default_factory=list)
    probe_size: int = 0
    probe_hash: str | None = None
    seconds: float = 0.0
    # Scores on the corrupted copies of the test set (worker.robustness), when asked.
    corruption_scores: list[CorruptionScore] = field(default_factory=list)


def _test_ids(split: Split) -> np.ndarray:
    """The dataset ids of the test rows (``Split.test_index``), the same across seeds."""
    return np.asarray(split.test_index, dtype=np.int64)


def _probe(split: Split, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, dataset ids) of the probe set: ``Split.x_probe``/``probe_index`` (identical
    for every trial of a comparison, never trained on); a split made without a probe (an
    in-process caller) falls back to its first ``size`` test rows."""
    if len(split.x_probe) > 0:
        return np.asarray(split.x_probe)[:size], _ids(split.probe_index)[:size]
    return split.x_test[:size], _test_ids(split)[:size]


def _ids(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def _graph(model: Any) -> list[tuple[Any, list[str | None]]]:
    """The model's layers in its (topological) order, each with the names of the layers whose
    outputs it takes; ``None`` names the model's input. A Sequential's layers take the one
    before; a Functional's, the tensors of their one call."""
    out: list[tuple[Any, list[str | None]]] = []
    prev: str | None = None
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        nodes = getattr(layer, "_inbound_nodes", None) or []
        tensors = list(nodes[0].input_tensors) if nodes else []
        parents: list[str | None] = []
        for t in tensors:
            op = t._keras_history.operation
            parents.append(None if type(op).__name__ == "InputLayer" else op.name)
        out.append((layer, parents or [prev]))
        prev = layer.name
    return out


def _layer_grams(model: Any, x: np.ndarray) -> list[LayerGram]:
    """Call the model's layers in order on ``x``; the Gram of every analysed layer's output
    (merge outputs included: a graph's layers each take their inputs' outputs).

    The probe goes through in chunks of ``_BATCH`` examples that stay chunks from layer to
    layer (inference is per example), as backend tensors: a layer's inputs and output over
    the probe are in memory, never a concatenated copy, and an output is dropped once its last
    reader has run. The Gram is assembled from the
    chunks' float32 products on the backend (TensorFlow's matmul: measured 3x faster than
    NumPy's OpenBLAS here), then centred and packed in float64 (n x n)."""
    from keras import ops

    out: list[LayerGram] = []
    graph = _graph(model)
    readers: dict[str | None, int] = {}
    for _, parents in graph:
        for p in parents:
            readers[p] = readers.get(p, 0) + 1
    alive: dict[str | None, list[Any]] = {
        None: [
            ops.convert_to_tensor(np.asarray(x[s : s + _BATCH], dtype=np.float32))
            for s in range(0, len(x), _BATCH)
        ]
    }
    sizes = [int(c.shape[0]) for c in alive[None]]
    starts = np.cumsum([0, *sizes])
    n = int(starts[-1])
    for i, (layer, parents) in enumerate(graph):
        ins = [alive[p] for p in parents]
        if len(ins) == 1:
            chunks = [ops.cast(layer(c, training=False), "float32") for c in ins[0]]
        else:
            chunks = [
                ops.cast(layer(list(cs), training=False), "float32")
                for cs in zip(*ins, strict=True)
            ]
        for p in parents:
            readers[p] -= 1
            if readers[p] == 0:
                del alive[p]
        if readers.get(layer.name, 0):
            alive[layer.name] = chunks
        kind = type(layer).__name__
        if kind in SKIPPED_LAYER_TYPES:
            continue
        flats = [ops.reshape(c, (int(c.shape[0]), -1)) for c in chunks]
        gram = np.empty((n, n), dtype=np.float64)
        for a, fa in enumerate(flats):
            for b in range(a, len(flats)):
                block = ops.convert_to_numpy(ops.matmul(fa, ops.transpose(flats[b])))
                gram[starts[a] : starts[a + 1], starts[b] : starts[b + 1]] = block
                gram[starts[b] : starts[b + 1], starts[a] : starts[a + 1]] = block.T
        del flats
        out.append(LayerGram(index=i, name=layer.name, kind=kind, gram=pack_gram(gram)))
    return out


def analyse_model(
    model: Any,
    split: Split,
    analysis: AnalysisSpec,
    *,
    batch_size: int,
    probs: np.ndarray | None = None,
) -> AnalysisResult:
    """Predictions on the test set (``probs`` when the evaluation already made them) and
    per-layer Grams over the probe set, as asked."""
    t0 = time.perf_counter()
    result = AnalysisResult()
    if analysis.predictions and len(split.y_test):
        if probs is None:
            probs = np.asarray(model.predict(split.x_test, batch_size=batch_size, verbose=0))
        result.examples = _test_ids(split)
        result.labels = np.asarray(split.y_test, dtype=np.int64)
        result.probs = probs.astype(np.float32)
    if analysis.similarity:
        x, ids = _probe(split, analysis.probe_size)
        if len(x) >= 2:
            result.grams = _layer_grams(model, x)
            result.probe_size = len(x)
            result.probe_hash = probe_hash(ids)
    result.seconds = time.perf_counter() - t0
    return result


def store_analysis(session: Session, trial_id: str, result: AnalysisResult | None) -> None:
    """Replace the trial's stored analysis with ``result`` (in the caller's transaction: the
    one that commits the trial's result). Replacing, not adding: a retried commit or a
    trial trained again never doubles it."""
    from core.store.tables import TrialCorruptionScore, TrialPrediction

    session.execute(delete(TrialPrediction).where(TrialPrediction.trial_id == trial_id))
    session.execute(delete(TrialLayerGram).where(TrialLayerGram.trial_id == trial_id))
    session.execute(delete(TrialCorruptionScore).where(TrialCorruptionScore.trial_id == trial_id))
    if result is None:
        return
    session.add_all(
        TrialCorruptionScore(
            trial_id=trial_id,
            corruption=c.corruption,
            severity=c.severity,
            accuracy=c.accuracy,
            loss=c.loss,
            n=c.n,
        )
        for c in result.corruption_scores
    )
    if result.probs is not None and result.examples is not None and result.labels is not None:
        session.add(encode_predictions(trial_id, result.examples, result.labels, result.probs))
    if result.probe_hash is not None:
        session.add_all(
            TrialLayerGram(
                trial_id=trial_id,
                layer_index=g.index,
                layer=g.name,
                kind=g.kind,
                probe_size=result.probe_size,
                probe_hash=result.probe_hash,
                gram=g.gram,
            )
            for g in result.grams
        )
    session.flush()
