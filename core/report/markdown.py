"""Markdown made safe: text escaped so a variant's name cannot add markup, and tables."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

__all__ = ["md_escape", "md_table"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_escape(text: str) -> str:
    """Text made inert in Markdown: HTML escaped, Markdown punctuation backslashed, one line."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, every cell escaped."""
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in headers) + "|")
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines
