"""/readyz is open, so its checks are cached: one database check per api process and second,
however many probes arrive (the api in process on SQLite, a real engine counting statements)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from api.routes.health import READY_CACHE_SECONDS
from tests.support.services import in_process_api


def test_readiness_checks_run_at_most_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.store.db import get_engine

    with in_process_api("sqlite", tmp_path, monkeypatch) as api:
        probes: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.strip().upper() == "SELECT 1":
                probes.append(statement)

        event.listen(get_engine(), "before_cursor_execute", count)
        try:
            assert api.get("/readyz").json()["status"] == "ok"
            cpu = time.process_time()
            started = time.monotonic()
            answers = [api.get("/readyz") for _ in range(40)]
            cpu = time.process_time() - cpu
            elapsed = time.monotonic() - started
            checks = len(probes)
            time.sleep(READY_CACHE_SECONDS + 0.1)
            assert api.get("/readyz").status_code == 200
        finally:
            event.remove(get_engine(), "before_cursor_execute", count)
    assert all(a.status_code == 200 and a.json()["checks"]["database"] == "ok" for a in answers)
    print(
        f"41 probes in {elapsed:.2f} s: {checks} database checks, {cpu * 1000 / 40:.1f} ms CPU each"
    )
    # One check at first, one more for each second the probes took; then a fresh one.
    assert checks <= 1 + int(elapsed / READY_CACHE_SECONDS) + 1, (checks, elapsed)
    assert len(probes) == checks + 1
