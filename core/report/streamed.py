"""The prediction differences of ``core.report.differences``, streamed over trials and pairs.

``compute_differences`` takes every trial's predictions at once; this module gives the same
figures (to floating-point rounding: the tests check each against it) reading at most two
trials at a time, each read by its own query, and keeping between reads only what the
statistics need: counts per seed and per seed pair, and per test example the sums that the
example-clustered variances are made of.

Memory, for test sets of n examples: two trials' labels, predictions and example ids as read
(16 bytes per example each: the stored bytes, not copied), the alignment of the two (about
40 bytes per shared example while it runs), and one pair's sums per example (the example ids
and four float64 sums, 40 bytes per example of the union of the test sets). It grows with
the test set, never with the number of variants, seeds or pairs. Each variant's own figures
(per-class accuracy, calibration, which need the probabilities) are read in one pass over
its trials and kept as the few numbers they are; the pairs are read once per tested pair
(each seed pair: the cross pairs and every pair of a variant's seeds).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.report.differences import (
    combine_seed_p,
    expected_calibration_error,
    finish_differences,
    mcnemar_exact,
)
from core.report.stats import holm
from core.status import TrialStatus
from core.store.table_reads import TRIAL_ORDER
from core.store.tables import Trial, TrialPrediction

__all__ = ["Labelled", "PerExample", "predicted_trials", "streamed_differences"]

_EPS = 1e-12  # the probability floor of the NLL, as core.report.differences
_LABEL_BITS = 20  # per-class sums are keyed by (example id, label): labels below 2**20

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Labelled:
    """One trial's example ids, labels and predicted classes (views on the stored bytes)."""

    examples: Array
    labels: Array
    predicted: Array


class PerExample:
    """Named sums per key (a test example's id), over the growing sorted set of keys seen."""

    def __init__(self, *names: str) -> None:
        self.keys: Array = np.zeros(0, dtype=np.int64)
        self.sums: dict[str, Array] = {n: np.zeros(0) for n in names}

    def _positions(self, keys: Array) -> Array:
        if len(self.keys):
            pos = np.searchsorted(self.keys, keys)
            if bool((pos < len(self.keys)).all()) and np.array_equal(self.keys[pos], keys):
                return pos
        merged = np.union1d(self.keys, keys)
        where = np.searchsorted(merged, self.keys)
        for name, old in self.sums.items():
            grown = np.zeros(len(merged))
            grown[where] = old
            self.sums[name] = grown
        self.keys = merged
        return np.searchsorted(merged, keys)

    def add(self, keys: Array, **values: Array | None) -> None:
        """Add each value (None: one per key) at its key; ``keys`` unique."""
        pos = self._positions(keys)
        for name, v in values.items():
            self.sums[name] += np.bincount(pos, weights=v, minlength=len(self.keys))


def _clustered(k: Array, m: Array) -> tuple[float, float, int, int] | None:
    """(rate, cluster-robust variance, clusters, rows) from each cluster's hits ``k`` and
    rows ``m``: ``core.report.differences._clustered_variance`` from its sums."""
    present = m > 0
    k, m = k[present], m[present]
    n = round(float(m.sum()))
    if n == 0:
        return None
    groups, rate = len(m), float(k.sum()) / n
    if groups < 2:
        return rate, 0.0, groups, n
    return rate, groups / (groups - 1) * float(np.sum((k - rate * m) ** 2)) / n**2, groups, n


def _wilson(k: Array, m: Array) -> list[float] | None:
    """``core.report.differences._clustered_wilson`` from each example's sums."""
    found = _clustered(k, m)
    if found is None:
        return None
    rate, robust, groups, n = found
    binomial = rate * (1.0 - rate) / n
    n_eff = n / max(1.0, robust / binomial) if binomial > 0.0 and groups > 1 else float(groups)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(rate * n_eff, n_eff, alpha=0.05, method="wilson")
    return [float(lo), float(hi)]


@dataclass
class _Variant:
    """What a variant's figures need from all its trials, read once: per class (correct,
    rows, interval) and the mean ECE and NLL."""

    per_class: dict[int, tuple[int, int, list[float] | None]]
    ece: float | None
    nll: float | None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(present)) if present else None


def _variant(session: Session, trial_ids: Sequence[str]) -> _Variant:
    sums = PerExample("k", "m")
    eces: list[float | None] = []
    nlls: list[float | None] = []
    for trial_id in trial_ids:
        row = session.get(TrialPrediction, trial_id)
        if row is None:
            continue
        # Views on the stored bytes; the float16 probabilities are widened one column at a
        # time (exactly, as core.report.similarity.decode_predictions does all at once).
        examples = np.frombuffer(row.examples, dtype="<i8")
        labels = np.frombuffer(row.labels, dtype="<i4")
        correct = np.frombuffer(row.predicted, dtype="<i4") == labels
        probs = np.frombuffer(row.probs, dtype="<f2").reshape(row.n, row.num_classes)
        p_true = probs[np.arange(len(labels)), labels].astype(np.float64)
        eces.append(expected_calibration_error(probs.max(axis=1).astype(np.float64), correct))
        nlls.append(float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0)))) if len(p_true) else None)
        del probs, p_true
        keys = (examples << _LABEL_BITS) | labels.astype(np.int64)
        sums.add(keys, k=correct.astype(np.float64), m=None)
    label_of = sums.keys & ((1 << _LABEL_BITS) - 1)
    per_class = {}
    for label in np.unique(label_of).tolist():
        mask = label_of == label
        k, m = sums.sums["k"][mask], sums.sums["m"][mask]
        per_class[int(label)] = (round(float(k.sum())), round(float(m.sum())), _wilson(k, m))
    return _Variant(per_class=per_class, ece=_mean(eces), nll=_mean(nlls))


class _Reader:
    """Reads one trial's labels and predictions at a time, keeping the last two read."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.kept: OrderedDict[str, Labelled] = OrderedDict()
        self.reads = 0

    def __call__(self, trial_id: str) -> Labelled:
        if trial_id in self.kept:
            self.kept.move_to_end(trial_id)
            return self.kept[trial_id]
        while len(self.kept) >= 2:
            self.kept.popitem(last=False)
        row = self.session.execute(
            select(
                TrialPrediction.examples, TrialPrediction.labels, TrialPrediction.predicted
            ).where(TrialPrediction.trial_id == trial_id)
        ).one()
        self.reads += 1
        found = Labelled(
            examples=np.frombuffer(row.examples, dtype="<i8"),
            labels=np.frombuffer(row.labels, dtype="<i4"),
            predicted=np.frombuffer(row.predicted, dtype="<i4"),
        )
        self.kept[trial_id] = found
        return found


def _aligned(x: Labelled, y: Labelled) -> tuple[Array, Any, Any]:
    """(the shared example ids, their rows in x, their rows in y); two trials with the same
    test set in the same order (paired seeds under a fixed split) are used as they are."""
    if np.array_equal(x.examples, y.examples):
        return x.examples, slice(None), slice(None)
    ids, ix, iy = np.intersect1d(x.examples, y.examples, assume_unique=True, return_indices=True)
    return ids, ix, iy


@dataclass
class _PairSums:
    """One tested pair's sums: per example (cross and seed-to-seed rows of the paired seeds),
    per seed (cross) and per seed pair (seed-to-seed), and the counts of the figures."""

    examples: PerExample = field(default_factory=lambda: PerExample("kc", "mc", "kw", "mw"))
    cross: dict[int, tuple[int, int]] = field(default_factory=dict)
    within_pairs: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    within_of: dict[str, tuple[int, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seed_p: list[float] = field(default_factory=list)
    class_p: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))


def _cross(sums: _PairSums, s: int, x: Labelled, y: Labelled) -> None:
    ids, ix, iy = _aligned(x, y)
    differ = x.predicted[ix] != y.predicted[iy]
    sums.cross[s] = (int(differ.sum()), len(ids))
    if len(ids) == 0:
        return
    sums.examples.add(ids, kc=differ.astype(np.float64), mc=None)
    ca, cb = x.predicted[ix] == x.labels[ix], y.predicted[iy] == y.labels[iy]
    sums.counts["disagree"] += int(differ.sum())
    sums.counts["shared"] += len(ids)
    sums.counts["a_wrong"] += int(np.sum(~ca))
    sums.counts["both_wrong"] += int(np.sum(~ca & ~cb))
    sums.seed_p.append(mcnemar_exact(ca, cb))
    labels = x.labels[ix]
    for label in np.unique(labels).tolist():
        m = labels == label
        sums.class_p[int(label)].append(mcnemar_exact(ca[m], cb[m]))


def _within(
    sums: _PairSums, name: str, seeds: Mapping[int, str], paired: set[int], read: _Reader
) -> None:
    """Every pair of the variant's seeds; those of paired seeds also go into the pair's
    seed-to-seed sums (per example and per seed pair) for ``beyond_seeds_p``."""
    flags = rows = 0
    for s, u in itertools.combinations(sorted(seeds), 2):
        x, y = read(seeds[s]), read(seeds[u])
        ids, ix, iy = _aligned(x, y)
        differ = x.predicted[ix] != y.predicted[iy]
        flags, rows = flags + int(differ.sum()), rows + len(ids)
        if s in paired and u in paired:
            k, n = sums.within_pairs.get((s, u), (0, 0))
            sums.within_pairs[(s, u)] = (k + int(differ.sum()), n + len(ids))
            if len(ids):
                sums.examples.add(ids, kw=differ.astype(np.float64), mw=None)
    sums.within_of[name] = (flags, rows)


def _beyond_seeds_p(sums: _PairSums, seeds: Sequence[int]) -> float | None:
    """``core.report.differences.beyond_seeds_p`` from the pair's sums."""
    k = len(seeds)
    if k < 3:
        return None
    n_c = sum(n for _, n in sums.cross.values())
    n_w = sum(n for _, n in sums.within_pairs.values())
    if n_c == 0 or n_w == 0:
        return None
    rate_c = sum(f for f, _ in sums.cross.values()) / n_c
    rate_w = sum(f for f, _ in sums.within_pairs.values()) / n_w
    e = sums.examples.sums
    present = (e["mc"] > 0) | (e["mw"] > 0)
    g = int(present.sum())
    u = (e["kc"][present] - rate_c * e["mc"][present]) / n_c
    u -= (e["kw"][present] - rate_w * e["mw"][present]) / n_w
    var_examples = g / (g - 1) * float(np.sum(u**2)) if g > 1 else 0.0
    diff = rate_c - rate_w
    leave_out = []
    for s in seeds:
        cross = [v for x, v in sums.cross.items() if x != s]
        within = [v for key, v in sums.within_pairs.items() if s not in key]
        nc, nw = sum(n for _, n in cross), sum(n for _, n in within)
        if nc == 0 or nw == 0:
            return None
        leave_out.append(sum(f for f, _ in cross) / nc - sum(f for f, _ in within) / nw)
    d = np.array(leave_out)
    var_seeds = (k - 1) / k * float(np.sum((d - d.mean()) ** 2))
    var = max(var_examples, var_seeds)
    if var <= 0.0:
        return 0.0 if diff > 0.0 else 1.0
    from scipy.stats import t

    return float(t.sf(diff / math.sqrt(var), df=k - 1))


def _per_class(sums: _PairSums, va: _Variant, vb: _Variant) -> list[dict[str, Any]]:
    labels_all = sorted(set(va.per_class) | set(vb.per_class))
    combined = {label: combine_seed_p(sums.class_p.get(label, [])) for label in labels_all}
    tested = [label for label in labels_all if combined[label] is not None]
    adjusted = dict(zip(tested, holm([combined[x] or 1.0 for x in tested]), strict=True))
    out = []
    for label in labels_all:
        ka, na, ci_a = va.per_class.get(label, (0, 0, None))
        kb, nb, ci_b = vb.per_class.get(label, (0, 0, None))
        out.append(
            {
                "label": label,
                "accuracy_a": ka / na if na else None,
                "accuracy_b": kb / nb if nb else None,
                "accuracy_a_ci95": ci_a,
                "accuracy_b_ci95": ci_b,
                "n_a": na,
                "n_b": nb,
                "p_adjusted": adjusted.get(label),
            }
        )
    return out


def _rate(flags: int, rows: int) -> float | None:
    return flags / rows if rows else None


def _pair(
    a: str,
    b: str,
    trials: Mapping[str, Mapping[int, str]],
    variant: Callable[[str], _Variant],
    read: _Reader,
) -> dict[str, Any]:
    """``core.report.differences._pair``, streamed."""
    ta, tb = trials.get(a, {}), trials.get(b, {})
    seeds = sorted(set(ta) & set(tb))
    sums = _PairSums()
    for s in seeds:
        _cross(sums, s, read(ta[s]), read(tb[s]))
    _within(sums, "a", ta, set(seeds), read)
    _within(sums, "b", tb, set(seeds), read)
    va, vb = variant(a), variant(b)
    c, e = sums.counts, sums.examples.sums
    (fa, ra), (fb, rb) = sums.within_of["a"], sums.within_of["b"]
    shared = c["shared"]
    return {
        "a": a,
        "b": b,
        "seeds": seeds,
        "n_examples": shared,
        "disagreement": c["disagree"] / shared if shared else None,
        "disagreement_ci95": _wilson(e["kc"], e["mc"]) if shared else None,
        "within_a": _rate(fa, ra),
        "within_b": _rate(fb, rb),
        "within": _rate(fa + fb, ra + rb),
        "beyond_seeds_p": _beyond_seeds_p(sums, seeds),
        "beyond_seeds_p_adjusted": None,
        "error_overlap": c["both_wrong"] / c["a_wrong"] if c["a_wrong"] else None,
        "mcnemar_p": combine_seed_p(sums.seed_p),
        "mcnemar_p_adjusted": None,
        "per_class": _per_class(sums, va, vb),
        "ece_a": va.ece,
        "ece_b": vb.ece,
        "nll_a": va.nll,
        "nll_b": vb.nll,
        "cka_last_hidden": None,
        "cka_last_hidden_within_a": None,
        "cka_last_hidden_within_b": None,
    }


def predicted_trials(session: Session, comparison_id: str) -> dict[str, dict[int, str]]:
    """variant -> seed -> trial id of the succeeded trials that stored predictions (in the
    tables' order; of two trials of one seed the later, as ``compute_differences`` keeps)."""
    rows = session.execute(
        select(Trial.variant, Trial.seed, Trial.id)
        .join(TrialPrediction, TrialPrediction.trial_id == Trial.id)
        .where(Trial.comparison_id == comparison_id, Trial.status == TrialStatus.SUCCEEDED)
        .order_by(*TRIAL_ORDER)
    )
    out: dict[str, dict[int, str]] = defaultdict(dict)
    for name, seed, trial_id in rows:
        out[str(name)][int(seed)] = str(trial_id)
    return dict(out)


def streamed_differences(
    session: Session,
    comparison_id: str,
    pairs: Sequence[tuple[str, str]],
    *,
    cka_last_hidden: Mapping[tuple[str, str], Mapping[str, float | None]] | None = None,
    noun: str = "test examples",
    alpha: float = 0.05,
    interim: bool = False,
) -> list[dict[str, Any]]:
    """``compute_differences`` of the comparison's stored predictions, at most two trials'
    arrays in memory at a time (see the module's note); [] when no trial kept predictions."""
    trials = predicted_trials(session, comparison_id)
    if not trials:
        return []
    variants: dict[str, _Variant] = {}

    def variant(name: str) -> _Variant:
        if name not in variants:
            ordered = trials.get(name, {})
            variants[name] = _variant(session, [ordered[s] for s in sorted(ordered)])
        return variants[name]

    read = _Reader(session)
    out = [_pair(a, b, trials, variant, read) for a, b in pairs]
    return finish_differences(
        out, cka_last_hidden=cka_last_hidden, noun=noun, alpha=alpha, interim=interim
    )
