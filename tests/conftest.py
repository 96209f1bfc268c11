"""Shared fixtures: real Postgres, real Redis, a real api server and a real Celery worker.

Outside CI a missing Postgres or Redis skips the tests that need it; with CI=true it fails them,
so a green CI run always means the real services were exercised. The helpers behind them are
in tests/support (import them from there; nothing is imported from this file).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.support import services
from tests.support.services import (
    REDIS,
    ROOT,
    Service,
    base_env,
    free_port,
    fresh_database,
    require,
    start,
    stop,
    wait_http,
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this test session."""
    with fresh_database() as url:
        yield url


LOCK_KEY = "archbench:test-session-owner"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number of its own for this session (claimed with a lock key, so
    concurrent test runs never share a queue), flushed before and after."""
    import redis

    try:
        redis.Redis.from_url(f"{REDIS}/0", socket_connect_timeout=2).ping()
    except redis.RedisError:
        require(False, "Redis at " + REDIS)
        raise
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS}/{db}")
        if client.set(LOCK_KEY, owner, nx=True, ex=3 * 3600):
            break
    else:
        pytest.fail("all Redis databases 1-15 are claimed by other test sessions")
    for key in client.scan_iter():
        if key != LOCK_KEY.encode():
            client.delete(key)
    yield f"{REDIS}/{db}"
    client.flushdb()


@pytest.fixture(scope="session")
def distributed(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """archbench on Postgres + Redis: migrated, one api server and one worker process.

    Auth off, which a distributed deployment refuses unless told explicitly: the tests here
    exercise training, not tenancy (tests.secured runs the api with keys)."""
    data_dir = tmp_path_factory.mktemp("distributed")
    env = base_env(
        data_dir,
        ARCHBENCH_DATABASE_URL=pg_url,
        ARCHBENCH_BROKER_URL=redis_url,
        ARCHBENCH_ALLOW_NO_AUTH="true",
    )
    py = [sys.executable, "-m", "cli.main"]
    subprocess.run([*py, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = free_port()
    svc = Service(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    svc.logs = {"api": data_dir / "api.log", "worker": data_dir / "worker.log"}
    svc.procs["api"] = start([*py, "api", "--port", str(port)], env, svc.logs["api"])
    svc.procs["worker"] = start([*py, "worker", "--name", "test"], env, svc.logs["worker"])
    try:
        wait_http(svc.url, svc.procs["api"], svc.logs["api"])
        yield svc
    finally:
        for proc in svc.procs.values():
            stop(proc)


SERVICE_FIXTURES = frozenset({"pg_url", "redis_url", "distributed"})
"""Fixtures that reach the real Postgres or Redis (directly or through another fixture)."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Every test that needs Postgres or Redis carries ``@pytest.mark.services``: one that uses
    a service fixture without it fails here, and one that opens a database itself
    (``tests.support.services.fresh_database``) fails there."""
    marked = item.get_closest_marker("services") is not None
    services.SERVICES_MARKED = marked
    used = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
    if used and not marked:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(sorted(used))}: mark it @pytest.mark.services",
            pytrace=False,
        )


def pytest_configure(config: pytest.Config) -> None:
    """Under ``make test-fast`` (ARCHBENCH_TEST_NO_TRAINING=1) a test that fits a Keras model
    fails, so a training test without its ``training`` marker cannot slow the fast tier."""
    if os.environ.get("ARCHBENCH_TEST_NO_TRAINING") != "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("this test trains a model: mark it @pytest.mark.training")

    keras.Model.fit = refuse
