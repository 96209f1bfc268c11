"""Real services for tests: Postgres databases, archbench processes and their environment.

Outside CI a missing Postgres or Redis skips the tests that need it; with CI=true it fails them,
so a green CI run always means the real services were exercised. The fixtures that use these
live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN = os.environ.get("ARCHBENCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("ARCHBENCH_TEST_REDIS", "redis://127.0.0.1:6379")


SERVICES_MARKED: bool | None = None
"""Whether the running test carries ``@pytest.mark.services`` (set by tests/conftest.py for
each test; None outside a test run)."""


def require_marker(what: str) -> None:
    """Fail a test that reaches ``what`` (Postgres, Redis) without the ``services`` marker:
    ``-m "not services"`` must deselect every test that needs the real services."""
    if SERVICES_MARKED is False:
        pytest.fail(f"this test uses {what}: mark it @pytest.mark.services", pytrace=False)


def require(ok: bool, what: str) -> None:
    """Skip without the service, but fail under CI=true: CI must run these tests."""
    if ok:
        return
    if CI:
        pytest.fail(f"{what} is not reachable, and CI=true forbids skipping real-service tests")
    pytest.skip(f"{what} is not reachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_database(prefix: str = "archbench_test") -> Iterator[str]:
    """A new, empty Postgres database, dropped afterwards (a missing server fails under CI;
    a test without the ``services`` marker fails at once)."""
    import psycopg

    require_marker("PostgreSQL")

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        require(False, "PostgreSQL at " + PG_ADMIN)
        raise
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def in_process_database(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point this process's settings, engine and sessions at ``url`` (migrated), then back."""
    from core.config import get_settings
    from core.store.db import get_engine, get_sessionmaker
    from core.store.migrate import upgrade

    monkeypatch.setenv("ARCHBENCH_DATABASE_URL", url)
    for cache in (get_settings, get_engine, get_sessionmaker):
        cache.cache_clear()
    try:
        upgrade(get_settings().database_url)
        yield
    finally:
        get_engine().dispose()
        for cache in (get_settings, get_engine, get_sessionmaker):
            cache.cache_clear()


@contextlib.contextmanager
def in_process_api(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str = "archbench_test"
) -> Iterator[TestClient]:
    """The api in this process (auth off, an embedded broker under ``tmp_path``) on a migrated
    database: ``database`` is "sqlite" (a file under ``tmp_path``) or "postgres" (fresh)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.trials.queue import client_app

    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARCHBENCH_ALLOW_NO_AUTH", "true")
    monkeypatch.setenv("ARCHBENCH_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    with (
        fresh_database(prefix)
        if database == "postgres"
        else contextlib.nullcontext(f"sqlite:///{tmp_path / 'archbench.db'}") as url,
        in_process_database(url, monkeypatch),
    ):
        client_app.cache_clear()
        try:
            with TestClient(create_app()) as c:
                yield c
        finally:
            client_app.cache_clear()


def queued_messages(broker: Path) -> list[str]:
    """The trial ids of the messages waiting in an embedded (SQL) broker's ``archbench``
    queue, in the order they were sent (``in_process_api`` puts it at ``tmp_path/broker.db``)."""
    import json

    from sqlalchemy import create_engine, text

    from core.trials.queue import TRAIN_TASK

    if not broker.exists():
        return []
    engine = create_engine(f"sqlite:///{broker}")
    try:
        with engine.connect() as conn:
            payloads = list(
                conn.execute(
                    text(
                        "SELECT m.payload FROM kombu_message m JOIN kombu_queue q "
                        "ON m.queue_id = q.id WHERE q.name = 'archbench' ORDER BY m.id"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    headers = [json.loads(p)["headers"] for p in payloads]
    assert {h["task"] for h in headers} <= {TRAIN_TASK}
    return [str(h["argsrepr"]).strip("[]'") for h in headers]


@dataclass
class Service:
    """A running archbench: its URL, its environment and its processes."""

    url: str
    env: dict[str, str]
    data_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace") if name in self.logs else ""


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHBENCH_")}
    env.update(
        ARCHBENCH_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        **extra,
    )
    return env
