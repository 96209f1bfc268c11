"""The malformed corpus through the api, in process: 422 problem+json located in the body.

Each case is posted as the second variant of a comparison (the first one is valid) to an
app on an embedded SQLite database; nothing may be stored for a rejected comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.malformed import ANALYSIS_CASES, CASES
from tests.support.services import in_process_database


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from api.app import create_app

    tmp: Path = tmp_path_factory.mktemp("corpus_api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHBENCH_DATA_DIR", str(tmp))
        with in_process_database(f"sqlite:///{tmp / 'archbench.db'}", mp):
            yield TestClient(create_app(), raise_server_exceptions=True)


def stored() -> tuple[int, int]:
    from core.store.db import get_sessionmaker
    from core.store.tables import Comparison, Trial

    with get_sessionmaker()() as session:
        return (
            session.scalar(select(func.count()).select_from(Comparison)) or 0,
            session.scalar(select(func.count()).select_from(Trial)) or 0,
        )


def _cases() -> list[tuple[str, dict[str, Any], list[Any], str]]:
    """The parse corpus, and the analysis cases on mnist_5k's shape under default limits."""
    rows = [(c[0], c[1], c[2], c[3]) for c in CASES]
    rows += [(c[0], c[1], c[4], c[5]) for c in ANALYSIS_CASES if c[2] == (28, 28, 1) and not c[3]]
    return rows


CORPUS = _cases()


def test_corpus_reaches_the_api_analysis_cases_included() -> None:
    assert len(CASES) >= 70
    assert len(CORPUS) - len(CASES) >= 9  # the shape errors (kernel too large, ...) too


@pytest.mark.parametrize(
    ("data", "loc", "fragment"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_comparison_with_malformed_variant_is_422_and_stores_nothing(
    client: TestClient, data: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    spec = tiny_spec("corpus", variants=[small_mlp("ok"), data])
    resp = client.post("/v1/comparisons", json=spec)
    body = assert_problem(resp, 422)
    want = ["body", "variants", 1, *loc]
    errors = body["errors"]
    assert any(e["loc"] == want and fragment in e["msg"] for e in errors), errors
    assert all(e["loc"][:3] == ["body", "variants", 1] for e in errors), errors
    assert stored() == (0, 0)
