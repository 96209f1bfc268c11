"""OpenAPI examples, taken from the article that started archbench (examples/article.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ANALYZE_EXAMPLES", "ARTICLE_SPEC", "SUBMITTED_RESPONSES", "SUBMIT_EXAMPLES"]

_FILE = Path(__file__).resolve().parents[1] / "examples" / "article.json"

ARTICLE_SPEC: dict[str, Any] = json.loads(_FILE.read_text()) if _FILE.exists() else {}

# POST /v1/comparisons: the article's three models, three seeds, on mnist_5k.
SUBMIT_EXAMPLES: dict[str, dict[str, Any]] = (
    {
        "article": {
            "summary": "The article: conv128 vs two conv64 vs three conv64, 3 seeds",
            "value": ARTICLE_SPEC,
        },
        "adaptive": {
            "summary": "The article with adaptive seeds: 3 per variant, more until decided",
            "value": {
                **ARTICLE_SPEC,
                "name": "the article, seeds until decided",
                "seeds": {"min": 3, "max": 10, "step": 1},
                "equivalence_margin": 0.01,
            },
        },
    }
    if ARTICLE_SPEC
    else {}
)

# POST /v1/architectures/analyze: each of the article's variants, on the article's dataset.
ANALYZE_EXAMPLES: dict[str, dict[str, Any]] = {
    variant["name"]: {
        "summary": f"The article's {variant['name']} on {ARTICLE_SPEC['dataset']['name']}",
        "value": {"variant": variant, "dataset": {"name": ARTICLE_SPEC["dataset"]["name"]}},
    }
    for variant in ARTICLE_SPEC.get("variants", [])
}

# The 202 of POST /v1/comparisons: where to poll.
SUBMITTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: stored and queued (or answered from earlier identical trials). "
        "Poll the comparison at `Location` until its status is succeeded, failed or cancelled.",
        "headers": {
            "Location": {
                "description": "The new comparison's URL path, `/v1/comparisons/{id}`",
                "schema": {"type": "string", "format": "uri-reference"},
            }
        },
    }
}
