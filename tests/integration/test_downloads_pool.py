"""Table downloads hold no pooled connection of the request while they stream (issue 15,
item 1, the downloads' half), on the real stack (Postgres).

The api runs with a pool of one connection (``ARCHBENCH_DB_POOL_SIZE=1``, no overflow). Before
the fix ``/trials``, ``/metrics`` and ``/predictions`` kept the request's session (the
comparison lookup) open until the answer ended while their generator took a second
connection: with one connection every download waited ``ARCHBENCH_DB_POOL_TIMEOUT`` and broke
after its 200 headers. Now the lookup's session is closed before the body streams and the
first read happens before the headers, so each download answers in full with one connection,
and a pool that stays busy is a 503 problem+json with Retry-After, never a cut body or a 500.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator

import psycopg
import pyarrow.parquet as pq
import pytest

from tests.support.helpers import assert_problem, tiny_spec
from tests.support.secured import SecuredApi, secured_api

POOL_TIMEOUT = 3


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("downloads"),
        ("a",),
        ARCHBENCH_DB_POOL_SIZE="1",
        ARCHBENCH_DB_MAX_OVERFLOW="0",
        ARCHBENCH_DB_POOL_TIMEOUT=str(POOL_TIMEOUT),
        ARCHBENCH_ACCESS_LOG="false",
        ARCHBENCH_STATUS_CACHE_SECONDS="0",
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def comparison_id(api: SecuredApi) -> str:
    with api.client("a") as a:
        resp = a.post("/v1/comparisons", json=tiny_spec("dl", seeds=[0, 1], epochs=1))
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])


@pytest.mark.parametrize("table", ["trials", "metrics", "predictions"])
@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_a_download_needs_one_pooled_connection(
    api: SecuredApi, comparison_id: str, table: str, fmt: str
) -> None:
    with api.client("a") as a:
        resp = a.get(f"/v1/comparisons/{comparison_id}/{table}", params={"format": fmt})
    assert resp.status_code == 200, resp.text
    if fmt == "json":
        rows = json.loads(resp.content)["items"]
    elif fmt == "csv":
        lines = resp.text.splitlines()
        assert lines, "no header row"
        assert "," in lines[0]
        rows = lines[1:]
    else:
        rows = pq.read_table(io.BytesIO(resp.content)).to_pylist()
    # Two variants x two seeds, queued (no worker): four trials, no epochs, no predictions.
    assert len(rows) == (4 if table == "trials" else 0), rows
    # And the pool is free again for the next request.
    with api.client("a") as a:
        assert a.get("/v1/comparisons?limit=5").status_code == 200


def test_a_busy_pool_is_a_503_before_the_body(api: SecuredApi, comparison_id: str) -> None:
    """The only connection is busy (a download's read waits on a lock the test holds): another
    download waits ARCHBENCH_DB_POOL_TIMEOUT and answers 503 problem+json with Retry-After."""
    url = api.env["ARCHBENCH_DATABASE_URL"]
    done: dict[str, int] = {}
    with psycopg.connect(url) as lock:
        lock.execute("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE")

        def blocked() -> None:
            with api.client("a") as a:
                done["status"] = a.get(f"/v1/comparisons/{comparison_id}/trials").status_code

        first = threading.Thread(target=blocked)
        first.start()
        try:
            threading.Event().wait(1.0)  # the first download now holds the one connection
            with api.client("a") as a:
                resp = a.get(f"/v1/comparisons/{comparison_id}/trials", params={"format": "csv"})
            body = assert_problem(resp, 503)
            assert int(resp.headers["retry-after"]) > 0
            assert "retry" in body["detail"].lower()
        finally:
            lock.rollback()
            first.join(30)
    assert done.get("status") == 200, done
