"""The similarity heatmaps draw any user text as plain text and mark missing matrices."""

from __future__ import annotations

import io

from matplotlib.image import imread

from core.report.similarity_plot import render_similarity_png


def test_dollar_signs_and_broken_math_in_names_are_plain_text() -> None:
    sim = {
        "a": "$\\frac{$",  # matplotlib's math parser raises on these
        "b": "cost $5 vs $6",
        "layers_a": ["conv$\\alpha{$", "dense"],
        "layers_b": ["x$^$", "y", "z"],
        "cka": [[0.1, 0.5, None], [0.9, 1.0, 0.0]],
        "within_a": [[1.0, 0.3], [0.3, 1.0]],
        "within_b": None,
        "probe_size": 30,
        "seeds": [0, 1],
    }
    png = render_similarity_png(sim, title="title $\\sqrt{$")
    assert png.startswith(b"\x89PNG")
    height, width, _ = imread(io.BytesIO(png)).shape
    assert width >= 1200
    assert height >= 400
