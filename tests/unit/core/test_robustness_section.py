"""The report's "More robust?" section, every figure recomputed here from rows shaped as
``/robustness`` serves them (pandas, scipy's ttest_rel, statsmodels' Holm), and the mCE of
the section checked against a hand computation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from core.report.render import md_escape
from core.report.robustness_section import robustness_lines, robustness_section

CORRUPTIONS = ["gaussian_noise", "rotate"]
SEVERITIES = [2, 4]


def _rows(accuracy: dict[tuple[str, str, int, int], float]) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": f"{v}-{seed}",
            "variant": v,
            "seed": seed,
            "corruption": c,
            "severity": s,
            "accuracy": acc,
            "loss": None,
            "n": 100,
        }
        for (v, c, s, seed), acc in accuracy.items()
    ]


def _simulated(seed: int = 0, seeds: int = 5) -> list[dict[str, Any]]:
    """Three variants: b as accurate as a on clean data but losing less under corruption,
    c worse everywhere; per-seed noise."""
    rng = np.random.default_rng(seed)
    clean = {"a": 0.95, "b": 0.95, "c": 0.90}
    loss = {"a": 0.20, "b": 0.10, "c": 0.25}
    acc: dict[tuple[str, str, int, int], float] = {}
    for k in range(seeds):
        for v in clean:
            acc[(v, "clean", 0, k)] = clean[v] + rng.normal(0, 0.005)
            for c in CORRUPTIONS:
                for s in SEVERITIES:
                    acc[(v, c, s, k)] = clean[v] - loss[v] * s / 3 + rng.normal(0, 0.01)
    return _rows(acc)


def _section(rows: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return robustness_section(
        rows,
        pairs=pairs,
        names=["a", "b", "c"],
        reference="a",
        corruptions=CORRUPTIONS,
        severities=SEVERITIES,
    )


def test_every_pair_figure_is_recomputed_from_the_rows() -> None:
    rows = _simulated()
    pairs = [("a", "b"), ("a", "c")]
    section = _section(rows, pairs)
    df = pd.DataFrame(rows)
    corrupted = df[df.corruption != "clean"].groupby(["variant", "seed"]).accuracy.mean()
    clean = df[df.corruption == "clean"].set_index(["variant", "seed"]).accuracy
    drop = clean - corrupted
    raw_c, raw_d = [], []
    for (a, b), got in zip(pairs, section["pairs"], strict=True):
        xa, xb = corrupted.loc[a].sort_index(), corrupted.loc[b].sort_index()
        t = stats.ttest_rel(xa, xb)
        d = xa.to_numpy() - xb.to_numpy()
        half = stats.t.ppf(1 - 0.05 / 2 / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert got["corrupted"]["diff"] == pytest.approx(d.mean())
        assert got["corrupted"]["p"] == pytest.approx(t.pvalue)
        assert got["corrupted"]["ci_adjusted"] == pytest.approx([d.mean() - half, d.mean() + half])
        td = stats.ttest_rel(drop.loc[a].sort_index(), drop.loc[b].sort_index())
        assert got["drop"]["p"] == pytest.approx(td.pvalue)
        assert got["drop"]["diff"] == pytest.approx((drop.loc[a] - drop.loc[b]).mean())
        raw_c.append(t.pvalue)
        raw_d.append(td.pvalue)
        # Per corruption: the severities averaged, Holm within the pair.
        per = df[df.corruption.isin(CORRUPTIONS)].groupby(["variant", "corruption", "seed"])
        means = per.accuracy.mean()
        ps = [stats.ttest_rel(means.loc[a, c], means.loc[b, c]).pvalue for c in CORRUPTIONS]
        holm = multipletests(ps, method="holm")[1]
        assert [c["p"] for c in got["per_corruption"]] == pytest.approx(ps)
        assert [c["p_holm"] for c in got["per_corruption"]] == pytest.approx(list(holm))
    family_c = multipletests(raw_c, method="holm")[1]
    family_d = multipletests(raw_d, method="holm")[1]
    assert [p["corrupted"]["p_adjusted"] for p in section["pairs"]] == pytest.approx(list(family_c))
    assert [p["drop"]["p_adjusted"] for p in section["pairs"]] == pytest.approx(list(family_d))
    by_name = {v["name"]: v for v in section["variants"]}
    for v in ("a", "b", "c"):
        assert by_name[v]["clean_accuracy"] == pytest.approx(clean.loc[v].mean())
        assert by_name[v]["corrupted_accuracy"] == pytest.approx(corrupted.loc[v].mean())
        assert by_name[v]["drop"] == pytest.approx(drop.loc[v].mean())


def test_clean_accuracy_and_degrading_less_are_separate_claims() -> None:
    section = _section(_simulated(), [("a", "b"), ("a", "c")])
    ab, ac = section["pairs"]
    # a and b are alike on clean data; b loses less, so it is more accurate under corruption.
    assert ab["conclusion"] == "b"
    assert ab["degrades_less"] == "b"
    assert "b is more accurate than a" in ab["sentence"]
    assert "apart from clean accuracy, b degrades less" in ab["sentence"]
    # c is worse on clean data and loses more: a wins both claims.
    assert ac["conclusion"] == "a"
    assert ac["degrades_less"] == "a"
    assert ab["sentence"].startswith("Under 2 corruptions at severities 2 and 4,")


def test_a_pair_no_different_under_corruption_says_so() -> None:
    rng = np.random.default_rng(3)
    acc = {}
    for k in range(4):
        for v in ("a", "b", "c"):
            acc[(v, "clean", 0, k)] = 0.9 + rng.normal(0, 0.01)
            for c in CORRUPTIONS:
                for s in SEVERITIES:
                    acc[(v, c, s, k)] = 0.7 + rng.normal(0, 0.01)
    section = _section(_rows(acc), [("a", "b")])
    pair = section["pairs"][0]
    assert pair["conclusion"] == "neither"
    assert pair["degrades_less"] == "neither"
    assert "a and b are not shown to differ in accuracy" in pair["sentence"]
    assert "neither is shown to degrade less" in pair["sentence"]


def test_too_few_seeds_is_untested() -> None:
    section = _section(_simulated(seeds=2), [("a", "b")])
    pair = section["pairs"][0]
    assert pair["conclusion"] is None
    assert pair["corrupted"]["p"] is None
    assert "too few seeds" in pair["sentence"]


def test_the_sections_mce_by_hand() -> None:
    # Errors (1 - accuracy), one seed. Reference a; b:
    #   gaussian_noise: b 0.05, 0.10 against a 0.10, 0.20 -> CE 0.15 / 0.30 = 0.5
    #   rotate:         b 0.45, 0.50 against a 0.30, 0.40 -> CE 0.95 / 0.70
    #   mCE(b) = (0.5 + 0.95 / 0.7) / 2 = 0.928571...
    # Relative, clean errors a 0.05 and b 0.02:
    #   gaussian_noise: (0.03 + 0.08) / (0.05 + 0.15) = 0.55
    #   rotate:         (0.43 + 0.48) / (0.25 + 0.35) = 0.91 / 0.60
    #   relative mCE(b) = (0.55 + 0.91 / 0.6) / 2 = 1.033333...
    errors = {
        ("a", "clean", 0): 0.05,
        ("a", "gaussian_noise", 2): 0.10,
        ("a", "gaussian_noise", 4): 0.20,
        ("a", "rotate", 2): 0.30,
        ("a", "rotate", 4): 0.40,
        ("b", "clean", 0): 0.02,
        ("b", "gaussian_noise", 2): 0.05,
        ("b", "gaussian_noise", 4): 0.10,
        ("b", "rotate", 2): 0.45,
        ("b", "rotate", 4): 0.50,
    }
    rows = _rows({(v, c, s, 0): 1 - e for (v, c, s), e in errors.items()})
    section = robustness_section(
        rows,
        pairs=[("a", "b")],
        names=["a", "b"],
        reference="a",
        corruptions=CORRUPTIONS,
        severities=SEVERITIES,
    )
    by_name = {v["name"]: v for v in section["variants"]}
    assert by_name["a"]["mce"] == pytest.approx(1.0)
    assert by_name["a"]["relative_mce"] == pytest.approx(1.0)
    assert by_name["b"]["mce"] == pytest.approx(0.928571428)
    assert by_name["b"]["relative_mce"] == pytest.approx(1.033333333)


def test_the_markdown_section_escapes_names_and_lists_every_corruption() -> None:
    section = _section(_simulated(), [("a", "b")])
    lines = robustness_lines(section, md_escape)
    text = "\n".join(lines)
    assert lines[0] == "## More robust?"
    assert "| Variant | clean | corrupted | drop (points) | mCE | relative mCE |" in lines
    rows = [line for line in lines if line.startswith("| a | b | ") and "Holm p" not in line]
    assert len(rows) == len(CORRUPTIONS)
    assert "gaussian\\_noise" in text  # escaped in the prose and the table
    assert robustness_lines(None, md_escape) == []
