"""report.png's paired panel and its labelled answers.

The paired panel draws what carries a paired claim: for each tested pair whose test is the
paired t, each shared seed's difference A - B (a dot), their mean and the pair's 95% interval
(a diamond and bars: the t-interval, or the repeated interval of an adaptive design), the
zero line and the equivalence margin (a grey band). A pair tested by Welch's t (too few shared
seeds) has no per-seed differences and is listed as such.

The caption gives each level of the report its own labelled answer (``answers``: score,
predictions, representations), the label in bold in a left column, the answer wrapped beside
it; a report without ``answers`` gets its ``verdict``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CAPTION_WIDTH",
    "PairedPoints",
    "caption_lines",
    "draw_caption",
    "draw_paired",
    "paired_points",
]

CAPTION_WIDTH = 132  # characters a caption line holds beside its label
_LEVELS = (
    ("score", "Score"),
    ("predictions", "Predictions"),
    ("representations", "Representations"),
)
_CONCLUSION = {
    "a_better": "A better",
    "b_better": "B better",
    "equivalent": "equivalent",
    "inconclusive": "inconclusive",
    "untested": "untested",
}


@dataclass(frozen=True)
class PairedPoints:
    """One pair's per-seed differences A - B (metric units) and its mean and interval."""

    a: str
    b: str
    seeds: list[int]
    differences: list[float]
    mean: float | None
    ci95: list[float] | None
    conclusion: str


def paired_points(report: Mapping[str, Any]) -> list[PairedPoints]:
    """The tested pairs with a paired test, in the family's order."""
    per_seed = {
        v["name"]: {s["seed"]: s["value"] for s in v["per_seed"] if s["value"] is not None}
        for v in report["variants"]
    }
    out = []
    for p in report["pairwise"]:
        if p.get("test") != "paired_t":
            continue
        va, vb = per_seed.get(p["a"], {}), per_seed.get(p["b"], {})
        seeds = sorted(set(va) & set(vb))
        out.append(
            PairedPoints(
                a=p["a"],
                b=p["b"],
                seeds=seeds,
                differences=[va[s] - vb[s] for s in seeds],
                mean=p.get("diff"),
                ci95=p.get("ci95"),
                conclusion=_CONCLUSION.get(p.get("conclusion") or "", ""),
            )
        )
    return out


def draw_paired(ax: Any, report: Mapping[str, Any]) -> None:
    """The paired panel on ``ax``."""
    metric = report["primary_metric"]
    scale = 1.0 if metric == "test_loss" else 100.0
    pairs = paired_points(report)
    sequential = bool((report.get("design") or {}).get("sequential"))
    ci = "95% repeated CI" if sequential else "95% CI"
    ax.set_title(f"Paired A \u2212 B: per seed (dots), mean, {ci}", fontsize=10)
    if not pairs:
        ax.text(
            0.5,
            0.5,
            "No paired test yet:\na pair needs 3 seeds\nboth variants have",
            ha="center",
            va="center",
            fontsize=11,
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return
    margin = (report.get("design") or {}).get("equivalence_margin")
    if margin:
        ax.axhspan(-scale * margin, scale * margin, color="#e5e7eb", zorder=0, label="margin")
    ax.axhline(0.0, color="#5f6b7a", linewidth=1, linestyle="--", zorder=1)
    for i, pp in enumerate(pairs):
        ys = [scale * d for d in pp.differences]
        jitter = np.linspace(-0.12, 0.12, len(ys)) if len(ys) > 1 else np.zeros(len(ys))
        ax.scatter(i - 0.08 + jitter, ys, color="#334155", alpha=0.6, s=20, zorder=2)
        if pp.mean is not None:
            mean = scale * pp.mean
            yerr = None
            if pp.ci95 is not None:
                yerr = [[mean - scale * pp.ci95[0]], [scale * pp.ci95[1] - mean]]
            ax.errorbar(
                [i + 0.25], [mean], yerr=yerr, fmt="D", color="black", capsize=5, markersize=5
            )
    ax.set_xticks(
        range(len(pairs)), [f"{pp.a}\n\u2212 {pp.b}\n{pp.conclusion}" for pp in pairs], fontsize=8
    )
    for label in ax.get_xticklabels():
        label.set_parse_math(False)
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.set_ylabel("A \u2212 B" + (" (test loss)" if metric == "test_loss" else " (points)"))
    ax.grid(axis="y", alpha=0.3)


def caption_lines(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, line) per caption line: each answer wrapped, its label on its first line."""
    given = [
        (label, str(text))
        for key, label in _LEVELS
        if (text := (report.get("answers") or {}).get(key))
    ]
    if not given:
        given = [("Verdict", str(report.get("verdict", "")))]
    out: list[tuple[str, str]] = []
    for label, text in given:
        for k, line in enumerate(textwrap.wrap(text, width=CAPTION_WIDTH) or [""]):
            out.append((label if k == 0 else "", line))
    return out


def draw_caption(fig: Any, lines: Sequence[tuple[str, str]], *, line_frac: float) -> None:
    """The labelled answers at the foot of ``fig``, ``line_frac`` of its height a line."""
    top = 0.015 + line_frac * len(lines)
    for k, (label, line) in enumerate(lines):
        y = top - line_frac * (k + 1)
        if label:
            fig.text(0.125, y, label, ha="right", va="bottom", fontsize=10, weight="bold")
        fig.text(0.133, y, line, ha="left", va="bottom", fontsize=10, parse_math=False)
