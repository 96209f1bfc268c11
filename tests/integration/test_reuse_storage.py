"""On Postgres: a comparison of 60 trials that were all trained before refers to their stored
analysis instead of copying it, so it adds its trial and epoch rows (under 1 MB) rather than
the ~10 MB of predictions and Grams; the storage quota counts those rows no lower than the
database grows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from core.store.db import session_scope
from core.trials.storage import stored_bytes
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.reuse_rows import finish_with_analysis
from tests.support.services import in_process_api

pytestmark = [pytest.mark.services]

SEEDS = list(range(20))


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with in_process_api("postgres", tmp_path, monkeypatch, prefix="archbench_reuse") as c:
        yield c


def _spec(name: str) -> dict[str, Any]:
    variants = []
    for i, units in enumerate((16, 24, 32)):
        v = small_mlp(f"mlp{i}")
        v["layers"][1] = {**v["layers"][1], "units": units}
        variants.append(v)
    spec = tiny_spec(name, seeds=SEEDS, epochs=1, samples=5000, variants=variants)
    return {**spec, "reuse": True}


def _database_bytes() -> int:
    with session_scope() as s:
        total = s.scalar(
            text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'"
            )
        )
    return int(total or 0)


def test_a_reused_comparison_of_60_trials_adds_under_1_mb(client: TestClient) -> None:
    first = client.post("/v1/comparisons", json=_spec("trained"))
    assert first.status_code == 202, first.text
    written = finish_with_analysis(first.json()["id"], n_test=1000, probe=256, grams=2)
    assert written > 10_000_000  # what a copy would add again
    before = _database_bytes()
    with session_scope() as s:
        counted_before = stored_bytes(s, "default")
    again = client.post("/v1/comparisons", json=_spec("reused"))
    assert again.status_code == 202, again.text
    body = again.json()
    assert (body["status"], body["progress"]["trials_succeeded"]) == ("succeeded", 60)
    grew = _database_bytes() - before
    with session_scope() as s:
        counted = stored_bytes(s, "default") - counted_before
    print(f"60 reused trials: the database grew {grew:,} bytes; the quota counts {counted:,}")
    assert 0 < grew < 1_000_000
    assert counted >= grew  # the quota counts the rows at no less than they take
