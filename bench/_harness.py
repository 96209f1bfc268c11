"""Shared pieces of the benchmarks: a running archbench (embedded or on Postgres + Redis),
submitting and waiting, and the plain-Keras baseline they are compared against.

Benchmarks are scripts, not tests: each prints its figures and a ratio against its target.
Compare ratios from alternating runs (A B A B), never single absolute times.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("ARCHBENCH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("ARCHBENCH_BENCH_REDIS", "redis://127.0.0.1:6379")
LOCK_KEY = "archbench:test-session-owner"  # the same claim the test suite makes


def claim_redis() -> str:
    """A Redis database number nobody else uses (claimed with a lock key, freed by flushdb)."""
    import redis

    owner = f"bench:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_SERVER}/{db}")
        if client.set(LOCK_KEY, owner, nx=True, ex=3 * 3600):
            return f"{REDIS_SERVER}/{db}"
    raise RuntimeError("every Redis database 1-15 is claimed")


def release_redis(url: str) -> None:
    """Empty a claimed database, which also releases the claim."""
    import redis

    redis.Redis.from_url(url).flushdb()


TERMINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A running archbench: its base URL and its processes."""

    url: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    log_dir: Path


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHBENCH_")}
    env.update(
        ARCHBENCH_DATA_DIR=str(data_dir),
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
        # A private loopback service without keys: a distributed api refuses that unless told.
        ARCHBENCH_ALLOW_NO_AUTH="true",
    )
    env.update(extra)
    return env


def _wait_up(url: str, procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("archbench exited during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready")


@contextlib.contextmanager
def service(mode: str, workers: int = 1, /, **settings: str) -> Iterator[Running]:
    """archbench in ``mode`` "embedded" (archbench up) or "distributed" (Postgres + Redis),
    with extra ``ARCHBENCH_*`` ``settings`` (environment names, so ``mode`` and ``workers`` are
    positional: a setting can never be taken for one of them)."""
    py = [sys.executable, "-m", "cli.main"]
    with tempfile.TemporaryDirectory(prefix=f"archbench-bench-{mode}-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        procs: list[subprocess.Popen[bytes]] = []
        db_name = None
        broker = None
        logs = [open(data_dir / f"{i}.log", "wb") for i in range(workers + 1)]  # noqa: SIM115
        try:
            if mode == "embedded":
                env = _env(data_dir, **settings)
                procs.append(
                    subprocess.Popen(
                        [
                            *py,
                            "up",
                            "--port",
                            str(port),
                            "--data-dir",
                            str(data_dir),
                            "--workers",
                            str(workers),
                        ],
                        env=env,
                        cwd=ROOT,
                        stdout=logs[0],
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            else:
                import psycopg

                db_name = f"archbench_bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{db_name}"')
                broker = claim_redis()
                env = _env(
                    data_dir,
                    ARCHBENCH_DATABASE_URL=PG_ADMIN.rsplit("/", 1)[0] + "/" + db_name,
                    ARCHBENCH_BROKER_URL=broker,
                    **settings,
                )
                subprocess.run([*py, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
                procs.append(
                    subprocess.Popen(
                        [*py, "api", "--port", str(port)],
                        env=env,
                        cwd=ROOT,
                        stdout=logs[0],
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                for i in range(workers):
                    procs.append(
                        subprocess.Popen(
                            [*py, "worker", "--name", f"bench{i}"],
                            env=env,
                            cwd=ROOT,
                            stdout=logs[i + 1],
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
            _wait_up(url, procs)
            yield Running(url=url, env=env, procs=procs, log_dir=data_dir)
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGINT if mode == "embedded" else signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
            for fh in logs:
                fh.close()
            if broker:
                release_redis(broker)
            if db_name:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def run_comparison(url: str, spec: dict[str, Any], timeout: float = 3600) -> tuple[float, str]:
    """Submit, wait for the end, fetch the report; returns (seconds, comparison id)."""
    with httpx.Client(base_url=url, timeout=60) as client:
        t0 = time.perf_counter()
        resp = client.post("/v1/comparisons", json=spec)
        if resp.is_error:
            raise SystemExit(f"submit refused ({resp.status_code}): {resp.text}")
        cid = resp.json()["id"]
        while True:
            status = client.get(f"/v1/comparisons/{cid}").json()["status"]
            if status in TERMINAL:
                break
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(cid)
            # A poll costs the api a few ms of the CPU that training uses; a script polls
            # this often at most, and the end is seen within 0.1 s.
            time.sleep(0.2)
        client.get(f"/v1/comparisons/{cid}/report").raise_for_status()
        elapsed = time.perf_counter() - t0
    if status != "succeeded":
        raise RuntimeError(f"comparison {cid} ended {status}")
    return elapsed, cid


@dataclass
class Api:
    """An api process alone (no worker) on a fresh Postgres database."""

    url: str
    database_url: str
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def api_on_postgres(prefix: str, workers: int = 1, **settings: str) -> Iterator[Api]:
    """Migrate a fresh Postgres database, serve it with ``archbench api``, drop it after.

    The broker is a claimed Redis database unless ``settings`` names one
    (``ARCHBENCH_BROKER_URL``)."""
    import psycopg

    db = f"archbench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    database_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    broker = None if "ARCHBENCH_BROKER_URL" in settings else claim_redis()
    env = _env(
        Path(tempfile.mkdtemp(prefix=f"archbench-{prefix}-")),
        ARCHBENCH_DATABASE_URL=database_url,
        **({"ARCHBENCH_BROKER_URL": broker} if broker else {}),
        **settings,
    )
    py = [sys.executable, "-m", "cli.main"]
    api = None
    try:
        subprocess.run([*py, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        port = free_port()
        api = subprocess.Popen(
            [*py, "api", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, [api])
        yield Api(url=url, database_url=database_url, proc=api)
    finally:
        if api is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=30)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if broker:
            release_redis(broker)


def add_warm_models_option(parser: Any) -> None:
    """``--warm-models N``: ARCHBENCH_WARM_MODELS for the benchmarked worker."""
    parser.add_argument(
        "--warm-models",
        type=int,
        default=None,
        help="ARCHBENCH_WARM_MODELS for the worker (0: a new model per trial, as the plain loop)",
    )


def warm_models_settings(args: Any) -> dict[str, str]:
    """The worker settings ``--warm-models`` asks for (none when not given)."""
    if args.warm_models is None:
        return {}
    return {"ARCHBENCH_WARM_MODELS": str(args.warm_models)}


def wrk_command(url: str, connections: int, seconds: float) -> list[str]:
    """wrk (a C load generator, so the CPU is left to the api) on ``url``: 2 threads."""
    return [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "--timeout",
        "10s",
        url,
    ]


def wrk_figures(out: str) -> tuple[float, dict[str, float], list[str]]:
    """wrk's requests/s, its latency percentiles in ms (``{"50%": ..., "99%": ...}``) and its
    error lines (non-2xx answers, socket errors)."""
    rps = float(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("Requests/sec")))
    pct: dict[str, float] = {}
    for ln in out.splitlines():
        parts = ln.split()
        if len(parts) == 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", parts[1])  # 812.00us, 8.90ms, 1.20s
            if m:
                scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[m.group(2)]
                pct[parts[0]] = float(m.group(1)) * scale
    errors = [ln.strip() for ln in out.splitlines() if "Non-2xx" in ln or "Socket errors" in ln]
    return rps, pct, errors
