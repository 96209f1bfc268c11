"""Open event streams must not starve the api: 200 ``/events`` streams while 50 clients poll.

One api process on Postgres (so every stream lands in the same process and the same database
pool of 10 + 20 connections). ``--streams`` streams are opened on ``--comparisons``
comparisons and held open (they read their replay, then idle with keep-alives); meanwhile
``--clients`` keep-alive clients poll for ``--seconds``: most poll ``GET /v1/comparisons/{id}``,
one in ten lists ``GET /v1/comparisons?limit=5`` (the request that once timed out at
60 s). Prints the polls' p50/p99 and the count of 5xx answers; the target is p99 under
100 ms and no 5xx. Before the fix each stream held a pooled connection: 31 streams emptied
the pool and the next requests waited 30 s and failed with 500.

Usage: ``python bench/streams.py [--streams 200] [--clients 50] [--seconds 20]``.
Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time

import httpx
from _harness import api_on_postgres, wrk_command, wrk_figures
from many_small import tiny_spec

TARGET_P99_MS = 100.0


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _hold(
    client: httpx.AsyncClient, path: str, opened: list[int], stop: asyncio.Event
) -> None:
    async with client.stream("GET", path) as resp:
        opened.append(resp.status_code)
        if resp.status_code != 200:
            return
        chunks = resp.aiter_bytes()
        await chunks.__anext__()  # the replay
        reading = asyncio.ensure_future(chunks.__anext__())
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if reading in done:
                try:
                    reading.result()
                except StopAsyncIteration:
                    return
                reading = asyncio.ensure_future(chunks.__anext__())
        reading.cancel()


async def _poll(
    client: httpx.AsyncClient, path: str, until: float, out: list[float], statuses: list[int]
) -> None:
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        resp = await client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        statuses.append(resp.status_code)


async def _wrk_poll(url: str, ids: list[str], clients: int, seconds: float, open_: int) -> int:
    """Poll status with wrk (a C load generator, as api_load.py does): the Python pollers spend
    the 2 cores themselves, and their own p99 without any stream open is several hundred ms."""
    proc = await asyncio.create_subprocess_exec(
        *wrk_command(f"{url}/v1/comparisons/{ids[0]}", clients, seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    rps, pct, bad = wrk_figures((await proc.communicate())[0].decode())
    p99 = pct.get("99%", float("nan"))
    print(
        f"polling (wrk) with {open_} streams open: {rps:.0f} requests/s, p50 "
        f"{pct.get('50%', float('nan')):.1f} ms, p99 {p99:.1f} ms ({clients} connections, "
        f"{seconds:.0f} s)"
    )
    print(
        f"errors: {bad or 'none'}; p99 ratio vs target {p99 / TARGET_P99_MS:.2f}x "
        f"(target {TARGET_P99_MS:.0f} ms, no 5xx)"
    )
    return 0 if not bad else 1


async def _run(
    url: str, streams: int, comparisons: int, clients: int, seconds: float, poller: str = "python"
) -> int:
    limits = httpx.Limits(max_connections=streams + clients + 8, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        ids = []
        for _ in range(comparisons):
            created = await client.post("/v1/comparisons", json=tiny_spec(2, 200))
            ids.append(created.json()["id"])
        stop = asyncio.Event()
        opened: list[int] = []
        t0 = time.perf_counter()
        holders = [
            asyncio.ensure_future(
                _hold(client, f"/v1/comparisons/{ids[i % comparisons]}/events", opened, stop)
            )
            for i in range(streams)
        ]
        while len(opened) < streams and time.perf_counter() - t0 < 60:
            await asyncio.sleep(0.1)
        print(
            f"streams: {opened.count(200)} of {streams} open in {time.perf_counter() - t0:.1f} s"
            f" on {comparisons} comparisons (other answers: {sorted(set(opened) - {200})})"
        )
        if poller == "wrk":
            code = await _wrk_poll(url, ids, clients, seconds, opened.count(200))
            stop.set()
            await asyncio.gather(*holders, return_exceptions=True)
            return code
        polls: list[float] = []
        lists: list[float] = []
        statuses: list[int] = []
        until = time.perf_counter() + seconds
        # The pollers get a client of their own: httpx's pool scans its connections on every
        # request, and 200 held streams in it would slow the client, not the api.
        poll_limits = httpx.Limits(max_connections=clients + 4)
        pollers = httpx.AsyncClient(base_url=url, timeout=120, limits=poll_limits)
        await asyncio.gather(
            *(
                _poll(pollers, "/v1/comparisons?limit=5", until, lists, statuses)
                if n % 10 == 0
                else _poll(
                    pollers, f"/v1/comparisons/{ids[n % comparisons]}", until, polls, statuses
                )
                for n in range(clients)
            )
        )
        await pollers.aclose()
        stop.set()
        await asyncio.gather(*holders, return_exceptions=True)
    every = polls + lists
    p99 = _pct(every, 0.99)
    five = sum(s >= 500 for s in statuses)
    print(
        f"polling with {opened.count(200)} streams open: {len(every) / seconds:.0f} requests/s, "
        f"p50 {statistics.median(every):.1f} ms, p99 {p99:.1f} ms ({clients} clients, "
        f"{seconds:.0f} s); status p99 {_pct(polls, 0.99):.1f} ms, list p99 "
        f"{_pct(lists, 0.99):.1f} ms"
    )
    print(
        f"5xx: {five} (answers: {sorted(set(statuses))}); p99 ratio vs target "
        f"{p99 / TARGET_P99_MS:.2f}x (target {TARGET_P99_MS:.0f} ms, no 5xx)"
    )
    return 0 if five == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Start an api on a fresh Postgres database, open the streams, poll, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--comparisons", type=int, default=10)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument(
        "--poller",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="who polls: wrk (status only; the default when installed) or Python clients "
        "(status, and one in ten lists; the client's own CPU dominates its p99 on 2 cores)",
    )
    args = p.parse_args(argv)
    settings = {
        "ARCHBENCH_MAX_ACTIVE_COMPARISONS_PER_TENANT": "1000000",
        "ARCHBENCH_MAX_STREAMS_PER_TENANT": str(args.streams + 10),
        "ARCHBENCH_MAX_STREAMS": str(args.streams + 10),
        "ARCHBENCH_ACCESS_LOG": "false",
    }
    with api_on_postgres("streams", workers=1, **settings) as api:
        return asyncio.run(
            _run(api.url, args.streams, args.comparisons, args.clients, args.seconds, args.poller)
        )


if __name__ == "__main__":
    sys.exit(main())
