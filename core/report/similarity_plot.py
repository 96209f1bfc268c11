"""``GET .../similarity.png``: three CKA heatmaps, A against B, A against A' and B against B'.

Drawn on a bare ``Figure`` with the Agg canvas (no pyplot state, thread-safe, as
core.report.plot). Every text is plain: variant and layer names come from users, and
matplotlib would read a pair of ``$`` as math, so math parsing is off for every text
(``parse_math=False``; a test draws names that are broken math). Cells carry their value
when the matrix is small enough to read.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["render_similarity_png"]

_DPI = 100
_ANNOTATE_MAX = 14  # layers per side up to which each cell shows its value


def _panel(
    fig: Figure,
    ax: Any,
    matrix: Sequence[Sequence[float | None]] | None,
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    ylabel: str,
    xlabel: str,
) -> Any:
    ax.set_title(title, fontsize=11, parse_math=False)
    if not matrix:
        ax.text(
            0.5,
            0.5,
            "not enough trials\n(needs two seeds)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            parse_math=False,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return None
    m = np.array([[np.nan if x is None else x for x in r] for r in matrix], dtype=float)
    image = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis", origin="upper", aspect="auto")
    ax.set_xticks(range(len(cols)))
    ax.set_yticks(range(len(rows)))
    ax.set_xticklabels(list(cols), rotation=45, ha="right", parse_math=False)
    ax.set_yticklabels(list(rows), parse_math=False)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.set_ylabel(ylabel, parse_math=False)
    if max(m.shape) <= _ANNOTATE_MAX:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                v = m[i, j]
                ax.text(
                    j,
                    i,
                    "n/a" if not np.isfinite(v) else f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="black" if np.isfinite(v) and v > 0.6 else "white",
                    parse_math=False,
                )
    return image


def render_similarity_png(sim: Mapping[str, Any], *, title: str) -> bytes:
    """The three heatmaps of a ``core.report.similarity.similarity`` answer, as PNG bytes."""
    a, b = str(sim["a"]), str(sim["b"])
    la, lb = list(sim["layers_a"]), list(sim["layers_b"])
    width = max(15.0, 3.0 + 0.9 * (len(lb) + len(la) + len(lb)))
    height = max(5.5, 3.0 + 0.45 * max(len(la), len(lb), 1))
    fig = Figure(figsize=(min(width, 32.0), min(height, 20.0)), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    seeds = sim.get("seeds") or []
    image = _panel(fig, axes[0], sim.get("cka"), la, lb, f"{a} vs {b}", f"{a} layer", f"{b} layer")
    for ax, key, name, layers in (
        (axes[1], "within_a", a, la),
        (axes[2], "within_b", b, lb),
    ):
        drawn = _panel(
            fig,
            ax,
            sim.get(key),
            layers,
            layers,
            f"{name}: one seed vs another",
            f"{name} layer",
            f"{name} layer (other seed)",
        )
        image = image or drawn
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="linear CKA (0 to 1)")
    fig.suptitle(
        f"{title}\nlinear CKA per layer pair, probe of {sim.get('probe_size', 0)} examples, "
        f"mean over {len(seeds)} paired seed(s); 1 = same representation up to rotation and scale",
        fontsize=12,
        parse_math=False,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()
