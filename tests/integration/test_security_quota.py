"""The per-tenant quota holds under concurrent submits, on Postgres and on SQLite.

Several threads submit at once through ``core.trials.comparisons.create_comparison`` (the code the
api's POST runs), each in its own session against a real database. The race window between
counting a tenant's active comparisons and inserting the new one is widened on purpose (a
pause after the count), so that without the quota lock every thread would count below the
limit and insert: the test then fails every time, not once in a while. The same race through
real HTTP requests is in test_security_api.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import tiny_spec
from tests.support.services import fresh_database, in_process_database

pytestmark = pytest.mark.services

THREADS = 6
LIMIT = 2


@pytest.fixture(params=["postgresql", "sqlite"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'archbench.db'}"
        with in_process_database(url, monkeypatch):
            yield url
        return
    with fresh_database("archbench_quota") as url, in_process_database(url, monkeypatch):
        yield url


def test_concurrent_submits_never_pass_the_quota(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.trials.comparisons
    from core.config import get_settings
    from core.errors import TooManyRequests
    from core.spec import ComparisonSpec
    from core.store.db import session_scope
    from core.store.tables import Comparison
    from core.trials.validation import validate_comparison

    counted = core.trials.comparisons.check_active_quota

    def slow_check(session: Any, tenant: str, max_active: int) -> None:
        counted(session, tenant, max_active)
        time.sleep(0.3)  # every other submit counts now, unless the lock makes it wait

    monkeypatch.setattr(core.trials.comparisons, "check_active_quota", slow_check)
    validated = validate_comparison(
        ComparisonSpec.model_validate(tiny_spec("race", seeds=[0], epochs=1)), get_settings()
    )
    start = threading.Barrier(THREADS)
    created: list[str] = []
    refused: list[TooManyRequests] = []
    crashed: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            start.wait()
            with session_scope() as s:
                row, _, new = core.trials.comparisons.create_comparison(
                    s,
                    tenant="racer",
                    validated=validated,
                    idempotency_key=None,
                    request_hash=f"h{i}",
                    max_active=LIMIT,
                )
                assert new
                created.append(row.id)
        except TooManyRequests as exc:
            refused.append(exc)
        except BaseException as exc:
            crashed.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not crashed, crashed
    assert len(created) == LIMIT, (len(created), len(refused))
    assert len(refused) == THREADS - LIMIT
    assert all(int(e.headers["Retry-After"]) > 0 for e in refused)
    with session_scope() as s:
        stored = s.query(Comparison).filter(Comparison.tenant == "racer").count()
    assert stored == LIMIT
    # Another tenant is not held back by this one's quota.
    with session_scope() as s:
        _, _, new = core.trials.comparisons.create_comparison(
            s,
            tenant="other",
            validated=validated,
            idempotency_key=None,
            request_hash="o",
            max_active=LIMIT,
        )
    assert new
