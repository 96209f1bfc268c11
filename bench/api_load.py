"""A bounded load on loopback: clients polling ``GET /v1/comparisons/{id}`` while others submit.

The api runs on Postgres (uvicorn, ``--api-workers`` processes); ``--clients`` concurrent
keep-alive clients poll one comparison for ``--seconds`` while ``--submitters`` clients submit
small comparisons (no worker runs, so nothing trains). Prints requests per second and p50/p99
latency for each kind. MLflow's tracking server managed a median 164 requests/s with p99 583 ms
on this kind of machine; the target is p99 under 50 ms for polling at 50 clients.

Usage: ``python bench/api_load.py [--clients 50] [--submitters 2] [--seconds 20]``.
Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import threading
import time

import httpx
from _harness import api_on_postgres, wrk_command, wrk_figures
from many_small import tiny_spec

TARGET_P99_MS = 50.0
MLFLOW_RPS = 164.0  # ../shared/ANCHORS.md: MLflow's tracking server, GET runs/get, 50 clients


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _poller(
    client: httpx.AsyncClient, path: str, until: float, out: list[float], errors: list[int]
) -> None:
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        resp = await client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            errors.append(resp.status_code)


async def _submitter(
    client: httpx.AsyncClient, until: float, out: list[float], errors: list[int]
) -> None:
    spec = tiny_spec(6, 200)
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        resp = await client.post("/v1/comparisons", json=spec)
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 202:
            errors.append(resp.status_code)
        await asyncio.sleep(0.2)


async def _load(url: str, clients: int, submitters: int, seconds: float) -> None:
    limits = httpx.Limits(max_connections=clients + submitters + 4)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        created = await client.post("/v1/comparisons", json=tiny_spec(6, 200))
        path = f"/v1/comparisons/{created.json()['id']}"
        for _ in range(20):  # warm the connections and the api
            await client.get(path)
        polls: list[float] = []
        posts: list[float] = []
        errors: list[int] = []
        until = time.perf_counter() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_poller(client, path, until, polls, errors) for _ in range(clients)),
            *(_submitter(client, until, posts, errors) for _ in range(submitters)),
        )
        wall = time.perf_counter() - t0
    p99 = _pct(polls, 0.99)
    print(
        f"polling: {len(polls) / wall:.0f} requests/s, p50 {statistics.median(polls):.1f} ms, "
        f"p99 {p99:.1f} ms ({clients} clients, {wall:.0f} s)"
    )
    if posts:
        print(
            f"submitting: {len(posts) / wall:.1f} requests/s, p50 {statistics.median(posts):.1f}"
            f" ms, p99 {_pct(posts, 0.99):.1f} ms ({submitters} clients)"
        )
    print(
        f"errors: {len(errors)}; p99 ratio vs target {p99 / TARGET_P99_MS:.2f}x "
        f"(target {TARGET_P99_MS:.0f} ms)"
    )


def _submit_for(url: str, until: float, out: list[float], errors: list[int]) -> None:
    """One submitting client (a thread beside wrk): a small comparison every 0.2 s."""
    spec = tiny_spec(6, 200)
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            resp = client.post("/v1/comparisons", json=spec)
            out.append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 202:
                errors.append(resp.status_code)
            time.sleep(0.2)


def _wrk(url: str, clients: int, submitters: int, seconds: float) -> None:
    """Polling load from wrk (a C load generator), which leaves the CPU to the api, while
    ``submitters`` Python clients submit small comparisons."""
    with httpx.Client(base_url=url, timeout=30) as client:
        cid = client.post("/v1/comparisons", json=tiny_spec(6, 200)).json()["id"]
    posts: list[float] = []
    post_errors: list[int] = []
    until = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=_submit_for, args=(url, until, posts, post_errors))
        for _ in range(submitters)
    ]
    for t in threads:
        t.start()
    out = subprocess.run(
        wrk_command(f"{url}/v1/comparisons/{cid}", clients, seconds),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for t in threads:
        t.join()
    rps, pct, errors = wrk_figures(out)
    print(
        f"polling (wrk): {rps:.0f} requests/s, p50 {pct.get('50%', float('nan')):.1f} ms, "
        f"p99 {pct.get('99%', float('nan')):.1f} ms ({clients} connections, {seconds:.0f} s)"
    )
    if posts:
        print(
            f"submitting: {len(posts) / seconds:.1f} requests/s, p50 {statistics.median(posts):.1f}"
            f" ms, p99 {_pct(posts, 0.99):.1f} ms ({submitters} clients, errors {post_errors})"
        )
    print(
        f"errors: {errors or 'none'}; p99 ratio vs target "
        f"{pct.get('99%', float('nan')) / TARGET_P99_MS:.2f}x (target {TARGET_P99_MS:.0f} ms); "
        f"requests/s {rps / MLFLOW_RPS:.1f}x MLflow's {MLFLOW_RPS:.0f}/s"
    )


def main(argv: list[str] | None = None) -> int:
    """Start an api on a fresh Postgres database, load it, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--submitters", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument(
        "--status-cache-seconds",
        type=float,
        default=None,
        help="ARCHBENCH_STATUS_CACHE_SECONDS for the api (0: every poll reads the database)",
    )
    p.add_argument(
        "--no-access-log",
        action="store_true",
        help="ARCHBENCH_ACCESS_LOG=false: no log line per request",
    )
    p.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed (apt-get install wrk), else a Python client",
    )
    args = p.parse_args(argv)
    settings = {"ARCHBENCH_MAX_ACTIVE_COMPARISONS_PER_TENANT": "1000000"}
    if args.status_cache_seconds is not None:
        settings["ARCHBENCH_STATUS_CACHE_SECONDS"] = str(args.status_cache_seconds)
    if args.no_access_log:
        settings["ARCHBENCH_ACCESS_LOG"] = "false"
    with api_on_postgres("load", workers=args.api_workers, **settings) as api:
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        if use_wrk:
            _wrk(api.url, args.clients, args.submitters, args.seconds)
        else:
            asyncio.run(_load(api.url, args.clients, args.submitters, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
