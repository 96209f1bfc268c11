"""A database pool timeout is an overloaded api, not a bug: 503 problem+json, Retry-After."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import TimeoutError as PoolTimeout


def test_pool_timeout_is_a_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app
    from core.config import Settings

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    app = create_app(Settings(), check_migrations=False)

    @app.get("/boom")
    def boom() -> None:
        raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached")

    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/boom")
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert int(resp.headers["retry-after"]) > 0
    assert "QueuePool" not in resp.text
