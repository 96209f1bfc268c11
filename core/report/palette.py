"""One colour per variant, the same in the dashboard and in ``report.png``.

A variant's colour is ``PALETTE[i % len(PALETTE)]``, ``i`` its position in the comparison's
spec (the order of the report's ``variants``). The PNG takes it from ``variant_colour``; the
dashboard loads the same table from ``/static/palette.js`` (rendered from ``PALETTE`` by
``palette_js``), so there is one table to change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["PALETTE", "palette_js", "variant_colour", "variant_colours"]

PALETTE: tuple[str, ...] = (
    "#2563eb",  # blue
    "#dc2626",  # red
    "#16a34a",  # green
    "#9333ea",  # purple
    "#ea580c",  # orange
    "#0891b2",  # cyan
    "#ca8a04",  # amber
    "#db2777",  # pink
)


def variant_colour(index: int) -> str:
    """The colour of the variant at ``index`` in the spec's order."""
    return PALETTE[index % len(PALETTE)]


def variant_colours(names: Sequence[str]) -> dict[str, str]:
    """Each variant's colour, ``names`` in the spec's order."""
    return {name: variant_colour(i) for i, name in enumerate(names)}


def palette_js() -> str:
    """The dashboard's copy of the table, as a script that defines ``PALETTE``."""
    return (
        "// Rendered by archbench from core/report/palette.py: the PNG uses the same colours.\n"
        f"const PALETTE = {json.dumps(list(PALETTE))};\n"
    )
