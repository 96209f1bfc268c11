"""Event streams cannot starve the api, on the real stack (Postgres).

More streams are opened than the api's database pool has connections (10 + 20 overflow);
another tenant's requests must still answer at once, the api must hold only a few database
connections, and one stream past ``ARCHBENCH_MAX_STREAMS_PER_TENANT`` is a 429 problem+json
with Retry-After. Before the fix each open stream held a pooled connection for its lifetime:
the 31st stream waited 30 s for one, and every other request with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.helpers import assert_problem, tiny_spec
from tests.support.secured import SecuredApi, secured_api

pytestmark = pytest.mark.services

POOL = 30  # core.store.db: pool_size 10 + max_overflow 20
STREAMS = 40
LIMIT = STREAMS


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("streams"),
        ("a", "b"),
        ARCHBENCH_MAX_STREAMS_PER_TENANT=str(LIMIT),
        ARCHBENCH_ACCESS_LOG="false",
    ) as svc:
        yield svc


def _api_connections(api: SecuredApi) -> int:
    url = api.env["ARCHBENCH_DATABASE_URL"]
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state <> 'idle'"
            " AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _open_stream(
    client: httpx.AsyncClient, path: str, stack: list[httpx.Response]
) -> httpx.Response:
    request = client.build_request("GET", path)
    response = await client.send(request, stream=True)
    stack.append(response)
    return response


async def _scenario(api: SecuredApi, ids: list[str]) -> dict[str, object]:
    key_a = {"Authorization": f"Bearer {api.keys['a']}"}
    open_streams: list[httpx.Response] = []
    found: dict[str, object] = {}
    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=api.url, headers=key_a, timeout=60, limits=limits) as a:
        try:
            responses = await asyncio.gather(
                *(
                    _open_stream(a, f"/v1/comparisons/{ids[i % len(ids)]}/events", open_streams)
                    for i in range(STREAMS)
                )
            )
            found["statuses"] = sorted({r.status_code for r in responses})
            # Every stream replays: its first bytes carry the comparison's progress.
            # (The iterators are kept: a collected one would close its stream.)
            readers = [r.aiter_bytes() for r in responses]
            firsts = await asyncio.gather(*(asyncio.wait_for(it.__anext__(), 30) for it in readers))
            found["replayed"] = sum(b"event: progress" in chunk for chunk in firsts)

            # Another tenant, with every stream open: answered at once.
            def other_tenant() -> list[tuple[int, float]]:
                timings = []
                with api.client("b") as b:
                    for _ in range(5):
                        t0 = time.monotonic()
                        status = b.get("/v1/comparisons?limit=5").status_code
                        timings.append((status, time.monotonic() - t0))
                return timings

            found["other"] = await asyncio.to_thread(other_tenant)
            found["connections"] = await asyncio.to_thread(_api_connections, api)

            # One more stream of tenant a: over its limit.
            def one_more() -> httpx.Response:
                with api.client("a") as c:
                    return c.get(f"/v1/comparisons/{ids[0]}/events", timeout=10)

            found["extra"] = await asyncio.to_thread(one_more)
            found["still_open"] = sum(not r.is_closed for r in responses)
        finally:
            for r in open_streams:
                await r.aclose()
    return found


def test_streams_beyond_the_pool_do_not_starve_the_api(api: SecuredApi) -> None:
    ids = []
    with api.client("a") as a:
        for n in range(3):
            resp = a.post("/v1/comparisons", json=tiny_spec(f"s{n}", seeds=[0], epochs=1))
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
    assert STREAMS > POOL
    found = asyncio.run(_scenario(api, ids))

    assert found["statuses"] == [200]
    assert found["replayed"] == STREAMS
    other = found["other"]
    assert isinstance(other, list)
    assert [s for s, _ in other] == [200] * 5, other
    assert max(t for _, t in other) < 2.0, other
    # The streams share the feeds' reads: a connection now and then, never one per stream
    # held open (before the fix: 30, "idle in transaction", and the pool was empty).
    connections = found["connections"]
    assert isinstance(connections, int)
    assert connections <= 4, connections
    assert found["still_open"] == STREAMS
    extra = found["extra"]
    assert isinstance(extra, httpx.Response)
    body = assert_problem(extra, 429)
    assert "ARCHBENCH_MAX_STREAMS_PER_TENANT" in body["detail"]
    assert int(extra.headers["retry-after"]) > 0

    # Closed streams give their slots back: a new one opens again.
    deadline = time.monotonic() + 15
    with api.client("a") as a:
        while True:
            with a.stream("GET", f"/v1/comparisons/{ids[0]}/events") as resp:
                if resp.status_code == 200:
                    break
            assert time.monotonic() < deadline, "stream slots were not released"
            time.sleep(0.5)
    assert "Traceback" not in api.log.read_text()
