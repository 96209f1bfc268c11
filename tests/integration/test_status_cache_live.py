"""The status poll's cache on the real api process and Postgres: bounded lag, no leaks.

``GET /v1/comparisons/{id}`` may answer from the api process's memory for up to
``ARCHBENCH_STATUS_CACHE_SECONDS`` (1 s by default, as here); a cancel through the api is
seen at once, a missing id is never cached, and the entry is per tenant (the cross-tenant
case runs with auth on in test_security_api.py).
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.store.db import make_engine
from core.store.tables import Comparison
from tests.support.helpers import assert_problem, small_mlp, tiny_spec
from tests.support.services import Service

pytestmark = [pytest.mark.services, pytest.mark.worker]

LAG = 1.0  # the default ARCHBENCH_STATUS_CACHE_SECONDS


def test_a_poll_lags_the_database_by_at_most_the_cache_interval(distributed: Service) -> None:
    engine = make_engine(distributed.env["ARCHBENCH_DATABASE_URL"])
    # More seeds than the worker has children: some trial is still queued at the cancel.
    spec = tiny_spec("cache before", seeds=[0, 1, 2, 3], epochs=200, variants=[small_mlp()])
    with distributed.client() as client:
        cid = client.post("/v1/comparisons", json=spec).json()["id"]
        assert client.get(f"/v1/comparisons/{cid}").json()["name"] == "cache before"
        with Session(engine) as db:
            db.execute(update(Comparison).where(Comparison.id == cid).values(name="cache after"))
            db.commit()
        changed = time.monotonic()
        # Within the interval the poll is served from memory: the old name, no database read.
        assert client.get(f"/v1/comparisons/{cid}").json()["name"] == "cache before"
        while client.get(f"/v1/comparisons/{cid}").json()["name"] != "cache after":
            assert time.monotonic() - changed < LAG + 0.5, "the poll lagged past the interval"
            time.sleep(0.05)
        lag = time.monotonic() - changed
        assert lag > 0.1

        # A cancel through the api drops the entry: the next poll reads it.
        assert client.get(f"/v1/comparisons/{cid}").json()["progress"]["trials_cancelled"] == 0
        assert client.post(f"/v1/comparisons/{cid}/cancel").status_code == 202
        assert client.get(f"/v1/comparisons/{cid}").json()["progress"]["trials_cancelled"] >= 1

        # A missing comparison is a fresh 404 every time, and then found once it exists.
        missing = str(uuid.uuid4())
        assert_problem(client.get(f"/v1/comparisons/{missing}"), 404)
        assert_problem(client.get(f"/v1/comparisons/{missing}"), 404)
    engine.dispose()
    print(f"\nthe poll caught up with a database change {lag:.2f} s after it")
