"""OpenAPI examples, taken from the article that started archbench (examples/article.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ARTICLE_SPEC"]

_FILE = Path(__file__).resolve().parents[1] / "examples" / "article.json"

ARTICLE_SPEC: dict[str, Any] = json.loads(_FILE.read_text()) if _FILE.exists() else {}
