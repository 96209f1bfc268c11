"""An exhausted pool during the key lookup is a busy api, answered as every pool 503 is:
problem+json with ``Retry-After`` (real Postgres, the api in process, auth on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.services import in_process_api

pytestmark = [pytest.mark.services]


def test_pool_exhaustion_in_the_key_lookup_says_when_to_retry(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.store.db import get_engine, session_scope
    from core.store.tenancy import create_key

    for name, value in {
        "ARCHBENCH_AUTH": "true",
        "ARCHBENCH_DB_POOL_SIZE": "1",
        "ARCHBENCH_DB_MAX_OVERFLOW": "0",
        "ARCHBENCH_DB_POOL_TIMEOUT": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    with in_process_api("postgres", tmp_path, monkeypatch, prefix="archbench_authpool") as api:
        with session_scope() as s:
            _, key = create_key(s, "a")
        headers = {"Authorization": f"Bearer {key}"}
        with get_engine().connect():  # the pool's one connection is busy elsewhere
            busy = api.get("/v1/comparisons", headers=headers)
        assert busy.status_code == 503, busy.text
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert int(busy.headers["retry-after"]) > 0
        assert "retry shortly" in busy.json()["detail"]
        # Once a connection is free the same key works (nothing was cached from the failure).
        assert api.get("/v1/comparisons", headers=headers).status_code == 200
