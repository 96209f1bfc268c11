"""Do two variants do something different? Prediction-level differences per tested pair.

Pure functions of the stored test-set predictions (``TrialPredictions``, one per trial) and,
optionally, the last hidden layers' CKA. Every test is a library function: McNemar's exact
test is ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``, intervals are Wilson
score intervals (``statsmodels.stats.proportion.proportion_confint``), the Holm adjustment is
``core.report.stats.holm`` (the tests check it against ``statsmodels`` ``multipletests``).

What each figure is (the README's "Reading the differences" says the same for users):

- ``disagreement``: the share of (paired seed, shared test example) where A and B predict
  different classes. Seeds are paired by value (A's seed 3 against B's seed 3: the same split
  under either split design); examples line up by their dataset id. The 95% interval is a
  Wilson interval on the pooled counts at the effective sample size of rows clustered by
  example (one test example scored under several seeds, as under the fixed split, is one
  draw of an example, not several): it reflects the sampling of test examples, not the
  variation between seeds.
- ``within_a`` / ``within_b``: the same rate between two seeds of one variant (every pair of
  its seeds, on the test examples both share), the baseline "two runs of one model";
  ``within`` both variants' seed pairs pooled.
- ``beyond_seeds_p`` / ``beyond_seeds_p_adjusted``: the one-sided test that A and B disagree
  more than two seeds of one model do (``beyond_seeds_p``: the test examples' and the seeds'
  variance, Student's t), Holm-adjusted across the tested pairs. It alone decides
  ``differs``.
- ``error_overlap``: of A's errors on the shared examples, the share B also gets wrong.
- ``mcnemar_p`` / ``mcnemar_p_adjusted``: McNemar's exact test per paired seed (do A and B
  err on different examples more in one direction than the other, i.e. do their error rates
  differ on the same examples), combined across seeds by the Bonferroni rule
  (min p x number of seeds: valid whatever the dependence between seeds, which share test
  examples), then Holm-adjusted across the tested pairs. It compares the trained models of
  each seed, and two runs of one architecture differ in error rate by their luck alone, so
  it is reported, not used to claim a difference (it claimed one for 15-22% of simulated
  comparisons of one architecture with itself at a realistic seed-to-seed spread).
- ``per_class``: each variant's accuracy per true class over all its seeds with a Wilson
  interval (rows clustered by example, as for ``disagreement``); the per-class McNemar
  tests are combined across seeds the same way and Holm-adjusted across the classes of the
  pair.
- ``ece_a``/``ece_b``: expected calibration error of the top-label confidence with
  ``ECE_BINS`` equal-width bins on [0, 1], and ``nll_a``/``nll_b`` the mean negative log
  likelihood of the true class; each is computed per trial and averaged over seeds.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.report.format import level, level_interval, p_value
from core.report.stats import holm

__all__ = [
    "ECE_BINS",
    "TrialPredictions",
    "beyond_seeds_p",
    "combine_seed_p",
    "compute_differences",
    "difference_sentence",
    "differences_table",
    "expected_calibration_error",
    "finish_differences",
    "mcnemar_exact",
]

ECE_BINS = 15
_EPS = 1e-12


@dataclass(frozen=True, eq=False)
class TrialPredictions:
    """One trial's test-set predictions; rows line up by ``examples`` (dataset ids)."""

    trial_id: str
    variant: str
    seed: int
    examples: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    predicted: npt.NDArray[np.int64]
    p_true: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]  # the top class's probability

    @property
    def correct(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.predicted == self.labels
        return out


def _clustered_variance(ids: npt.ArrayLike, hits: npt.ArrayLike) -> tuple[float, float, int]:
    """(share of ``hits``, its cluster-robust variance, number of examples) when rows of the
    same example id (one test example under several seeds, or in several seed pairs) are not
    independent: the variance of a ratio estimator clustered by example, with the small-sample
    factor g / (g - 1); 0 with fewer than two examples."""
    ids_a = np.asarray(ids)
    h = np.asarray(hits, dtype=np.float64)
    n = len(h)
    _, cluster = np.unique(ids_a, return_inverse=True)
    k = np.bincount(cluster, weights=h)
    m = np.bincount(cluster).astype(np.float64)
    groups, rate = len(m), float(h.mean())
    if groups < 2:
        return rate, 0.0, groups
    return rate, groups / (groups - 1) * float(np.sum((k - rate * m) ** 2)) / n**2, groups


def _clustered_wilson(ids: npt.ArrayLike, hits: npt.ArrayLike) -> list[float] | None:
    """Wilson interval of the share of ``hits`` when rows of the same example id are not
    independent: Wilson at the effective sample size n / deff, with the design effect deff
    the cluster-robust variance (``_clustered_variance``) over the binomial one, at least 1.
    Rows of distinct examples give deff n / (n - 1): the plain Wilson interval, to rounding.
    With every row a hit or none, each example counts once."""
    n = len(np.asarray(hits))
    if n == 0:
        return None
    rate, robust, groups = _clustered_variance(ids, hits)
    binomial = rate * (1.0 - rate) / n
    n_eff = n / max(1.0, robust / binomial) if binomial > 0.0 and groups > 1 else float(groups)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(rate * n_eff, n_eff, alpha=0.05, method="wilson")
    return [float(lo), float(hi)]


def mcnemar_exact(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike) -> float:
    """McNemar's exact p-value for two classifiers on the same examples (statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    if table[0][1] + table[1][0] == 0:
        return 1.0
    return float(mcnemar(table, exact=True).pvalue)


def combine_seed_p(p_values: Sequence[float]) -> float | None:
    """One p-value from per-seed p-values: Bonferroni (min p x k), valid under any dependence."""
    if not p_values:
        return None
    return float(min(1.0, min(p_values) * len(p_values)))


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, bins: int = ECE_BINS
) -> float | None:
    """Top-label ECE: sum over equal-width confidence bins of (bin share) x |accuracy - mean
    confidence| (Guo et al. 2017); a confidence of exactly 1 falls in the last bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        return None
    which = np.clip(np.floor(conf * bins).astype(np.int64), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        m = int(mask.sum())
        if m:
            total += m / len(conf) * abs(float(ok[mask].mean()) - float(conf[mask].mean()))
    return total


def _aligned(
    x: TrialPredictions, y: TrialPredictions
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row positions in ``x`` and ``y`` of the test examples both hold, in id order."""
    _, ix, iy = np.intersect1d(x.examples, y.examples, assume_unique=True, return_indices=True)
    return ix, iy


Rows = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]
"""Rows of two trials on the test examples both share: each row's example id, and whether the
two predict different classes there."""


def _rows(x: TrialPredictions, y: TrialPredictions) -> Rows:
    ix, iy = _aligned(x, y)
    return x.examples[ix], x.predicted[ix] != y.predicted[iy]


def _joined(parts: Sequence[Rows]) -> Rows:
    ids = [np.zeros(0, dtype=np.int64), *(p[0] for p in parts)]
    flags = [np.zeros(0, dtype=bool), *(p[1] for p in parts)]
    return np.concatenate(ids), np.concatenate(flags)


def _within_rows(trials: Sequence[TrialPredictions]) -> Rows:
    """Every pair of the variant's seeds on the test examples both share."""
    return _joined([_rows(x, y) for x, y in itertools.combinations(trials, 2)])


def _rate(flags: npt.NDArray[np.bool_]) -> float | None:
    return float(flags.mean()) if len(flags) else None


def _difference_and_variance(cross: Rows, within: Rows) -> tuple[float, float] | None:
    """(cross rate minus seed-to-seed rate, its variance over test examples)."""
    c_ids, c_flags = cross
    w_ids, w_flags = within
    n_c, n_w = len(c_flags), len(w_flags)
    if n_c == 0 or n_w == 0:
        return None
    fc, fw = c_flags.astype(np.float64), w_flags.astype(np.float64)
    rate_c, rate_w = float(fc.mean()), float(fw.mean())
    examples, cluster = np.unique(np.concatenate([c_ids, w_ids]), return_inverse=True)
    g = len(examples)
    u = np.bincount(cluster[:n_c], weights=(fc - rate_c) / n_c, minlength=g)
    u -= np.bincount(cluster[n_c:], weights=(fw - rate_w) / n_w, minlength=g)
    var = g / (g - 1) * float(np.sum(u**2)) if g > 1 else 0.0
    return rate_c - rate_w, var


def _difference(cross: Sequence[Rows], within: Sequence[Rows]) -> float | None:
    """Cross rate minus seed-to-seed rate, from counts alone (for the jackknife)."""
    n_c, n_w = sum(len(f) for _, f in cross), sum(len(f) for _, f in within)
    if n_c == 0 or n_w == 0:
        return None
    return sum(int(f.sum()) for _, f in cross) / n_c - sum(int(f.sum()) for _, f in within) / n_w


def beyond_seeds_p(
    ta: Mapping[int, TrialPredictions], tb: Mapping[int, TrialPredictions]
) -> float | None:
    """One-sided p-value that A and B disagree more than two seeds of one model do.

    ``ta``/``tb``: each variant's trials by seed. The statistic is D, the rate at which A and
    B predict different classes on paired seeds minus the rate at which two seeds of one
    variant do (both variants' seed pairs pooled), over its standard error, referred to
    Student's t with k - 1 degrees of freedom for k paired seeds (``scipy.stats.t.sf``).
    Under the null, the two architectures differ as two seeds of one do, and D is 0.

    The variance has the two sources of doubt: the test examples (cluster-robust with the
    examples as clusters, both rates in one sum, so the covariance of rates read on the same
    examples counts) and the seeds (the leave-one-seed-out jackknife of D: a seed's luck,
    a run that is better or worse overall, moves its cross and seed-to-seed rows together).
    Each counts the per-row noise, so the larger of the two is used, not their sum (which
    counts it twice; both were checked by simulation, see the tests). The jackknife needs
    three paired seeds: with fewer, a difference between the architectures cannot be told
    from the luck of two runs, and the answer is None."""
    seeds = sorted(set(ta) & set(tb))
    k = len(seeds)
    if k < 3:
        return None
    # Each pair of trials is aligned once; the jackknife reuses the rows.
    cross = {s: _rows(ta[s], tb[s]) for s in seeds}
    within = {
        (s, u): (_rows(ta[s], ta[u]), _rows(tb[s], tb[u]))
        for s, u in itertools.combinations(seeds, 2)
    }
    whole = _difference_and_variance(
        _joined(list(cross.values())), _joined([r for pair in within.values() for r in pair])
    )
    if whole is None:
        return None
    diff, var_examples = whole
    leave_out = [
        _difference(
            [rows for x, rows in cross.items() if x != s],
            [r for key, pair in within.items() if s not in key for r in pair],
        )
        for s in seeds
    ]
    d = np.array([v for v in leave_out if v is not None])
    if len(d) != k:
        return None
    var_seeds = (k - 1) / k * float(np.sum((d - d.mean()) ** 2))
    var = max(var_examples, var_seeds)
    if var <= 0.0:
        return 0.0 if diff > 0.0 else 1.0
    from scipy.stats import t

    return float(t.sf(diff / math.sqrt(var), df=k - 1))


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(present)) if present else None


def _per_class_accuracy(
    trials: Sequence[TrialPredictions],
) -> dict[int, tuple[int, int, list[float] | None]]:
    """label -> (correct, rows, Wilson interval with rows clustered by example id)."""
    if not trials:
        return {}
    ids = np.concatenate([t.examples for t in trials])
    labels = np.concatenate([t.labels for t in trials])
    correct = np.concatenate([t.correct for t in trials])
    out: dict[int, tuple[int, int, list[float] | None]] = {}
    for label in np.unique(labels).tolist():
        m = labels == label
        out[int(label)] = (
            int(correct[m].sum()),
            int(m.sum()),
            _clustered_wilson(ids[m], correct[m]),
        )
    return out


def _calibration(trials: Sequence[TrialPredictions]) -> tuple[float | None, float | None]:
    eces = [expected_calibration_error(t.confidence, t.correct) for t in trials]
    nlls = [
        float(-np.mean(np.log(np.clip(t.p_true, _EPS, 1.0)))) if len(t.p_true) else None
        for t in trials
    ]
    return _mean(eces), _mean(nlls)


def _pair(
    a: str,
    b: str,
    by_variant: Mapping[str, Sequence[TrialPredictions]],
) -> dict[str, Any]:
    ta = {t.seed: t for t in by_variant.get(a, ())}
    tb = {t.seed: t for t in by_variant.get(b, ())}
    seeds = sorted(set(ta) & set(tb))
    disagree = shared = a_wrong = both_wrong = 0
    cross_parts: list[Rows] = []
    seed_p: list[float] = []
    class_p: dict[int, list[float]] = defaultdict(list)
    for s in seeds:
        x, y = ta[s], tb[s]
        ix, iy = _aligned(x, y)
        if len(ix) == 0:
            continue
        ca, cb = x.correct[ix], y.correct[iy]
        differ = x.predicted[ix] != y.predicted[iy]
        cross_parts.append((x.examples[ix], differ))
        disagree += int(np.sum(differ))
        shared += len(ix)
        a_wrong += int(np.sum(~ca))
        both_wrong += int(np.sum(~ca & ~cb))
        seed_p.append(mcnemar_exact(ca, cb))
        labels = x.labels[ix]
        for label in np.unique(labels).tolist():
            m = labels == label
            class_p[int(label)].append(mcnemar_exact(ca[m], cb[m]))
    acc_a = _per_class_accuracy(list(ta.values()))
    acc_b = _per_class_accuracy(list(tb.values()))
    labels_all = sorted(set(acc_a) | set(acc_b))
    combined_class = {label: combine_seed_p(class_p.get(label, [])) for label in labels_all}
    tested = [label for label in labels_all if combined_class[label] is not None]
    adjusted = dict(zip(tested, holm([combined_class[x] or 1.0 for x in tested]), strict=True))
    per_class = []
    for label in labels_all:
        ka, na, ci_a = acc_a.get(label, (0, 0, None))
        kb, nb, ci_b = acc_b.get(label, (0, 0, None))
        per_class.append(
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
    ece_a, nll_a = _calibration(list(ta.values()))
    ece_b, nll_b = _calibration(list(tb.values()))
    within_a, within_b = _within_rows(list(ta.values())), _within_rows(list(tb.values()))
    within = _joined([within_a, within_b])
    cross = _joined(cross_parts)
    return {
        "a": a,
        "b": b,
        "seeds": seeds,
        "n_examples": shared,
        "disagreement": disagree / shared if shared else None,
        "disagreement_ci95": _clustered_wilson(*cross) if shared else None,
        "within_a": _rate(within_a[1]),
        "within_b": _rate(within_b[1]),
        "within": _rate(within[1]),
        "beyond_seeds_p": beyond_seeds_p(ta, tb),
        "beyond_seeds_p_adjusted": None,  # filled in across pairs
        "error_overlap": both_wrong / a_wrong if a_wrong else None,
        "mcnemar_p": combine_seed_p(seed_p),
        "mcnemar_p_adjusted": None,  # filled in across pairs
        "per_class": per_class,
        "ece_a": ece_a,
        "ece_b": ece_b,
        "nll_a": nll_a,
        "nll_b": nll_b,
        "cka_last_hidden": None,
        "cka_last_hidden_within_a": None,
        "cka_last_hidden_within_b": None,
    }


def compute_differences(
    predictions: Sequence[TrialPredictions],
    pairs: Sequence[tuple[str, str]],
    *,
    cka_last_hidden: Mapping[tuple[str, str], Mapping[str, float | None]] | None = None,
    noun: str = "test examples",
    alpha: float = 0.05,
    interim: bool = False,
) -> list[dict[str, Any]]:
    """The differences of each tested pair (A, B), Holm-adjusted across ``pairs``.

    ``cka_last_hidden[(a, b)]`` may give ``{"cka", "within_a", "within_b"}`` (see
    ``core.report.similarity``). Pairs without a shared seed come back with None figures.
    ``interim`` (trials still to come): the figures are shown, but ``differs`` is None and the
    sentence claims nothing, since a test at the nominal alpha on a partial set of seeds, read
    again as seeds arrive, would be peeking.
    """
    by_variant: dict[str, list[TrialPredictions]] = defaultdict(list)
    for t in predictions:
        by_variant[t.variant].append(t)
    return finish_differences(
        [_pair(a, b, by_variant) for a, b in pairs],
        cka_last_hidden=cka_last_hidden,
        noun=noun,
        alpha=alpha,
        interim=interim,
    )


def finish_differences(
    out: list[dict[str, Any]],
    *,
    cka_last_hidden: Mapping[tuple[str, str], Mapping[str, float | None]] | None = None,
    noun: str = "test examples",
    alpha: float = 0.05,
    interim: bool = False,
) -> list[dict[str, Any]]:
    """The pairs' figures (one dict per tested pair, as ``_pair`` makes them, however their
    predictions were read) made answers: Holm across the pairs, the CKA, ``differs`` and the
    sentence (see ``compute_differences``)."""
    for key in ("mcnemar_p", "beyond_seeds_p"):
        tested = [i for i, d in enumerate(out) if d[key] is not None]
        for i, p in zip(tested, holm([out[i][key] for i in tested]), strict=True):
            out[i][f"{key}_adjusted"] = p
    for d in out:
        c = (cka_last_hidden or {}).get((d["a"], d["b"]))
        if c:
            d["cka_last_hidden"] = c.get("cka")
            d["cka_last_hidden_within_a"] = c.get("within_a")
            d["cka_last_hidden_within_b"] = c.get("within_b")
        d["differs"] = None if interim else _differs(d, alpha)
        sentence = difference_sentence(d, noun=noun, alpha=alpha)
        if interim and sentence is not None:
            sentence = f"So far (interim, more trials to come; no claim yet): {sentence}"
        d["sentence"] = sentence
    return out


def _seed_baseline(d: Mapping[str, Any]) -> float | None:
    within = d.get("within")
    return within if within is not None else _mean([d.get("within_a"), d.get("within_b")])


def _differs(d: Mapping[str, Any], alpha: float) -> bool | None:
    """True: A and B disagree more than two seeds of one model do (``beyond_seeds_p``,
    Holm-adjusted across the tested pairs, below alpha); False: not shown (not evidence that
    they are alike); None: not enough data (fewer than three paired seeds).

    McNemar does not decide it: it compares the two trained models of each seed, and two runs
    of one architecture differ in error rate by their luck alone (the score-level verdict
    judges error rates against that variance)."""
    p = d.get("beyond_seeds_p_adjusted")
    if p is None or d.get("disagreement_ci95") is None:
        return None
    return bool(p < alpha)


def _pct(x: float) -> str:
    # The report's one number format (core.report.format): 4.17%, as in the verdict's scores.
    return level(x, "test_accuracy")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def difference_sentence(
    d: Mapping[str, Any], *, noun: str = "test examples", alpha: float = 0.05
) -> str | None:
    """One plain sentence: how much A and B disagree, against two seeds of one model."""
    rate, ci = d.get("disagreement"), d.get("disagreement_ci95")
    if rate is None or ci is None:
        return None
    a, b = d["a"], d["b"]
    parts = [
        f"{a} and {b} disagree on {_pct(rate)} of {noun} "
        f"(95% CI {level_interval(ci, 'test_accuracy')})"
    ]
    base = _seed_baseline(d)
    if base is None:
        parts[0] += " (no seed-to-seed baseline: it needs two seeds of a variant)"
    elif base > 0:
        parts[0] += f", {rate / base:.1f}x the {_pct(base)} between two seeds of one model"
    else:
        parts[0] += ", while two seeds of one model never disagree"
    beyond = d.get("beyond_seeds_p_adjusted")
    if beyond is not None:
        parts[0] += f" (more than seeds: adjusted p {_p(beyond)})"
    p = d.get("mcnemar_p_adjusted")
    if p is not None:
        parts.append(f"McNemar adjusted p {_p(p)}")
    c, ca, cb = (
        d.get("cka_last_hidden"),
        d.get("cka_last_hidden_within_a"),
        d.get("cka_last_hidden_within_b"),
    )
    if c is not None:
        within = _mean([ca, cb])
        cka = f"their last hidden layers have CKA {c:.2f}"
        if within is not None:
            cka += f", against {within:.2f} between seeds"
        parts.append(cka)
    sentence = "; ".join(parts)
    verdict = d.get("differs", _differs(d, alpha))
    if verdict is False:
        sentence += ": not shown to differ more than two seeds of one model do"
    elif verdict is None and base is not None and beyond is None:
        sentence += ": three paired seeds are needed to tell a difference from the runs' luck"
    return sentence + "."


def _cell(x: float | None, pct: bool = False, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return _pct(x) if pct else f"{x:.{digits}f}"


def _p_cell(p: float | None) -> str:
    """A p-value cell: three decimals, ``< 0.001`` below that (never ``0.000``)."""
    return "n/a" if p is None else p_value(p)


def differences_table(
    differences: Sequence[Mapping[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """The differences as a table (headers, rows) for the Markdown and text reports."""
    headers = [
        "A",
        "B",
        "disagree",
        "95% CI",
        "A seed vs seed",
        "B seed vs seed",
        "A's errors B shares",
        "McNemar adj. p",
        "ECE A / B",
        "NLL A / B",
        "CKA last hidden (A-B / A-A' / B-B')",
        "classes that differ",
    ]
    rows = []
    for d in differences:
        ci = d.get("disagreement_ci95")
        classes = [
            str(c["label"])
            for c in d.get("per_class") or ()
            if c.get("p_adjusted") is not None and c["p_adjusted"] < 0.05
        ]
        rows.append(
            [
                str(d.get("a")),
                str(d.get("b")),
                _cell(d.get("disagreement"), pct=True),
                level_interval(ci, "test_accuracy") if ci else "n/a",
                _cell(d.get("within_a"), pct=True),
                _cell(d.get("within_b"), pct=True),
                _cell(d.get("error_overlap"), pct=True),
                _p_cell(d.get("mcnemar_p_adjusted")),
                f"{_cell(d.get('ece_a'))} / {_cell(d.get('ece_b'))}",
                f"{_cell(d.get('nll_a'))} / {_cell(d.get('nll_b'))}",
                " / ".join(
                    _cell(d.get(k), digits=2)
                    for k in (
                        "cka_last_hidden",
                        "cka_last_hidden_within_a",
                        "cka_last_hidden_within_b",
                    )
                ),
                ", ".join(classes) or "none",
            ]
        )
    return headers, rows
