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
  ``disagreement_ci95_seeds`` is the interval over seeds (``core.report.controls``), the one
  that answers "how much would another set of runs disagree"; the sentence gives both,
  labelled.
- ``control``: what the disagreement is compared with (``core.report.controls``):
  ``"replicates"``, a variant's trial against its replicate at the same data seed (same split
  and order, another initialisation), or ``"seeds"`` (no replicates), two seeds of one
  variant, which share neither. ``within_a`` / ``within_b``: the control's rate for each
  variant (on the test examples both trials share); ``within`` both pooled.
- ``beyond_seeds_p`` / ``beyond_seeds_p_adjusted``: the one-sided test that A and B disagree
  more than the control's pairs do (over ``control_seeds``; the test examples' and the seeds'
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

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.report.controls import (
    Control,
    Rows,
    TrialPredictions,
    aligned,
    beyond_control_p,
    control_of,
    joined,
    rate,
    rows,
    seed_interval,
)
from core.report.format import level, level_interval, p_value
from core.report.stats import holm

__all__ = [
    "CONTROL_PHRASES",
    "ECE_BINS",
    "TrialPredictions",
    "beyond_seeds_p",
    "combine_seed_p",
    "compute_differences",
    "control_phrase",
    "difference_sentence",
    "differences_table",
    "differs_beyond_seeds",
    "expected_calibration_error",
    "finish_differences",
    "mcnemar_exact",
]

ECE_BINS = 15
_EPS = 1e-12


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


def beyond_seeds_p(
    ta: Mapping[int, TrialPredictions], tb: Mapping[int, TrialPredictions]
) -> float | None:
    """One-sided p-value that A and B disagree more than two seeds of one model do (the
    control without replicates, ``core.report.controls``); ``ta``/``tb``: each variant's
    trials by seed. None with fewer than three paired seeds."""
    control = control_of(ta, tb, {}, {})
    return beyond_control_p({s: rows(ta[s], tb[s]) for s in control.seeds}, control.rows)


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


@dataclass
class _Cross:
    """The cross pair's figures over the paired seeds (A at s against B at s)."""

    rows: dict[int, Rows] = field(default_factory=dict)
    shared: int = 0
    a_wrong: int = 0
    both_wrong: int = 0
    seed_p: list[float] = field(default_factory=list)
    class_p: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def disagree(self) -> int:
        return sum(int(f.sum()) for _, f in self.rows.values())


def _cross(ta: Mapping[int, TrialPredictions], tb: Mapping[int, TrialPredictions]) -> _Cross:
    out = _Cross()
    for s in sorted(set(ta) & set(tb)):
        x, y = ta[s], tb[s]
        ix, iy = aligned(x, y)
        if len(ix) == 0:
            continue
        ca, cb = x.correct[ix], y.correct[iy]
        out.rows[s] = (x.examples[ix], x.predicted[ix] != y.predicted[iy])
        out.shared += len(ix)
        out.a_wrong += int(np.sum(~ca))
        out.both_wrong += int(np.sum(~ca & ~cb))
        out.seed_p.append(mcnemar_exact(ca, cb))
        labels = x.labels[ix]
        for label in np.unique(labels).tolist():
            m = labels == label
            out.class_p[int(label)].append(mcnemar_exact(ca[m], cb[m]))
    return out


def _per_class(
    ta: Mapping[int, TrialPredictions],
    tb: Mapping[int, TrialPredictions],
    class_p: Mapping[int, list[float]],
) -> list[dict[str, Any]]:
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
    return per_class


def _control_figures(cross: _Cross, control: Control) -> dict[str, Any]:
    """The control's rates (each variant's pairs, and both pooled) and the test against it."""
    within_a = joined([r for _, r in control.rows_a])
    within_b = joined([r for _, r in control.rows_b])
    tested = {s: cross.rows[s] for s in control.seeds if s in cross.rows}
    return {
        "control": control.kind,
        "control_seeds": sorted(tested),
        "within_a": rate(within_a[1]),
        "within_b": rate(within_b[1]),
        "within": rate(joined([within_a, within_b])[1]),
        "beyond_seeds_p": beyond_control_p(tested, control.rows),
        "beyond_seeds_p_adjusted": None,  # filled in across pairs
    }


def _by_seed(
    trials: Sequence[TrialPredictions],
) -> tuple[dict[int, TrialPredictions], dict[int, list[TrialPredictions]]]:
    """A variant's trials by seed, and its replicates by seed."""
    main = {t.seed: t for t in trials if t.replicate == 0}
    replicates: dict[int, list[TrialPredictions]] = defaultdict(list)
    for t in sorted((t for t in trials if t.replicate), key=lambda t: (t.seed, t.replicate)):
        replicates[t.seed].append(t)
    return main, dict(replicates)


def _pair(
    a: str,
    b: str,
    by_variant: Mapping[str, Sequence[TrialPredictions]],
) -> dict[str, Any]:
    ta, ra = _by_seed(by_variant.get(a, ()))
    tb, rb = _by_seed(by_variant.get(b, ()))
    cross = _cross(ta, tb)
    shared = cross.shared
    cross_rows = joined(list(cross.rows.values()))
    ece_a, nll_a = _calibration(list(ta.values()))
    ece_b, nll_b = _calibration(list(tb.values()))
    return {
        "a": a,
        "b": b,
        "seeds": sorted(set(ta) & set(tb)),
        "n_examples": shared,
        "disagreement": cross.disagree / shared if shared else None,
        "disagreement_ci95": _clustered_wilson(*cross_rows) if shared else None,
        "disagreement_ci95_seeds": seed_interval([float(f.mean()) for _, f in cross.rows.values()]),
        **_control_figures(cross, control_of(ta, tb, ra, rb)),
        "error_overlap": cross.both_wrong / cross.a_wrong if cross.a_wrong else None,
        "mcnemar_p": combine_seed_p(cross.seed_p),
        "mcnemar_p_adjusted": None,  # filled in across pairs
        "per_class": _per_class(ta, tb, cross.class_p),
        "ece_a": ece_a,
        "ece_b": ece_b,
        "nll_a": nll_a,
        "nll_b": nll_b,
        "cka_last_hidden": None,
        "cka_last_hidden_ci95": None,
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
            d["cka_last_hidden_ci95"] = c.get("ci95")
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
    if d.get("disagreement_ci95") is None:
        return None
    return differs_beyond_seeds(d.get("beyond_seeds_p_adjusted"), alpha)


def differs_beyond_seeds(p_adjusted: float | None, alpha: float) -> bool | None:
    """The one rule for "they differ", a pair's or a class's (``core.report.classes``): the
    Holm-adjusted beyond-seeds p-value below alpha; None when there is none."""
    return None if p_adjusted is None else bool(p_adjusted < alpha)


def _pct(x: float) -> str:
    # The report's one number format (core.report.format): 4.17%, as in the verdict's scores.
    return level(x, "test_accuracy")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


CONTROL_PHRASES = {
    "replicates": "two initialisations of one model on the same data",
    "seeds": "two seeds of one model",
}
"""How a sentence names each control (``core.report.controls``)."""


def control_phrase(d: Mapping[str, Any]) -> str:
    """The pair's control in words: two initialisations, or two seeds, of one model."""
    return CONTROL_PHRASES.get(str(d.get("control") or "seeds"), CONTROL_PHRASES["seeds"])


def _intervals(d: Mapping[str, Any]) -> str:
    """The disagreement's intervals, labelled: over seeds (the question's: another set of
    runs) when there are two seeds, and over test examples."""
    examples = level_interval(d["disagreement_ci95"], "test_accuracy")
    seeds = d.get("disagreement_ci95_seeds")
    if not seeds:
        return f"95% CI {examples}"
    return (
        f"95% CI over seeds {level_interval(seeds, 'test_accuracy')}; over test examples {examples}"
    )


def difference_sentence(
    d: Mapping[str, Any], *, noun: str = "test examples", alpha: float = 0.05
) -> str | None:
    """One plain sentence: how much A and B disagree, against the pair's control."""
    rate, ci = d.get("disagreement"), d.get("disagreement_ci95")
    if rate is None or ci is None:
        return None
    a, b = d["a"], d["b"]
    phrase = control_phrase(d)
    parts = [f"{a} and {b} disagree on {_pct(rate)} of {noun} ({_intervals(d)})"]
    base = _seed_baseline(d)
    if base is None:
        parts[0] += " (no seed-to-seed baseline: it needs two seeds of a variant)"
    elif base > 0:
        parts[0] += f", {rate / base:.1f}x the {_pct(base)} between {phrase}"
    else:
        parts[0] += f", while {phrase} never disagree"
    beyond = d.get("beyond_seeds_p_adjusted")
    if beyond is not None:
        more = "more than seeds" if d.get("control", "seeds") == "seeds" else "more than that"
        parts[0] += f" ({more}: adjusted p {_p(beyond)})"
    p = d.get("mcnemar_p_adjusted")
    if p is not None:
        parts.append(f"McNemar adjusted p {_p(p)}")
    if (cka := _cka_part(d)) is not None:
        parts.append(cka)
    sentence = "; ".join(parts)
    verdict = d.get("differs", _differs(d, alpha))
    if verdict is False:
        sentence += f": not shown to differ more than {phrase} do"
    elif verdict is None and base is not None and beyond is None:
        sentence += ": three paired seeds are needed to tell a difference from the runs' luck"
    if base is not None and d.get("control") == "seeds":
        sentence += (
            f". The control is {phrase}, which do not share the pair's data order (nor, under "
            "the per-seed design, its split), so it runs high and a real difference is hard "
            "to find; analysis.replicates trains a control that does"
        )
    return sentence + "."


def _cka_part(d: Mapping[str, Any]) -> str | None:
    c = d.get("cka_last_hidden")
    if c is None:
        return None
    cka = f"their last hidden layers have CKA {c:.2f}"
    if (ci := d.get("cka_last_hidden_ci95")) is not None:
        cka += f" (95% CI over seeds {ci[0]:.2f} to {ci[1]:.2f})"
    within = _mean([d.get("cka_last_hidden_within_a"), d.get("cka_last_hidden_within_b")])
    if within is not None:
        between = "initialisations" if d.get("control") == "replicates" else "seeds"
        cka += f", against {within:.2f} between {between}"
    return cka


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
        classes = [str(c["label"]) for c in d.get("per_class") or () if c.get("differs")]
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
