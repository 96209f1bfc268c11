"""A private archbench process stack for tests that kill things.

Its own Postgres database, its own ``redis-server`` on a free port (which a test may stop and
start again), one api server and worker processes that a test may SIGKILL and replace. Nothing
here touches the shared Redis or another test's database, so killing and restarting cannot
lose or steal anyone else's messages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.store.db import make_engine
from core.store.tables import Trial
from tests.support.services import (
    ROOT,
    base_env,
    free_port,
    fresh_database,
    require,
    require_marker,
    start,
    stop,
    wait_http,
)

__all__ = ["PrivateRedis", "Stack", "alive", "child_pid", "fresh_database", "process_stack"]


class PrivateRedis:
    """A ``redis-server`` of our own, without persistence (a restart loses every message)."""

    def __init__(self, log: Path) -> None:
        exe = shutil.which("redis-server")
        require(exe is not None, "redis-server (to start a private Redis)")
        self.exe = str(exe)
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        require_marker("a private Redis")
        cmd = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no"]
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    log = self.log.read_text()
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def queue_length(self, queue: str = "archbench") -> int:
        import redis

        return int(redis.Redis.from_url(self.url).llen(queue))


@dataclass
class Stack:
    """A running private archbench: api, workers, database and Redis."""

    url: str
    env: dict[str, str]
    data_dir: Path
    redis: PrivateRedis
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _engine: Any = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def db(self) -> Session:
        if self._engine is None:
            self._engine = make_engine(self.env["ARCHBENCH_DATABASE_URL"])
        return Session(self._engine)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace") if name in self.logs else ""

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start a worker process (one child) under ``name``."""
        py = [sys.executable, "-m", "cli.main"]
        self.logs[name] = self.data_dir / f"{name}.log"
        proc = start([*py, "worker", "--name", name], self.env, self.logs[name])
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL a process and its children (its whole process group)."""
        stop(self.procs.pop(name), signal.SIGKILL)

    def trial(self, trial_id: str) -> Trial:
        with self.db() as s:
            row = s.get(Trial, trial_id)
            assert row is not None
            s.expunge(row)
            return row

    def trial_ids(self, comparison_id: str) -> list[str]:
        with self.db() as s:
            q = select(Trial.id).where(Trial.comparison_id == comparison_id)
            return list(s.scalars(q.order_by(Trial.variant_index, Trial.seed)))

    def wait_trial(self, trial_id: str, ok: Any, timeout: float = 120, what: str = "") -> Trial:
        """Poll a trial row until ``ok(row)``; fail with the worker logs otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.trial(trial_id)
            if ok(row):
                return row
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited {proc.returncode}:\n{self.log(name)}")
            if time.monotonic() > deadline:
                logs = "\n".join(self.log(n)[-3000:] for n in self.logs if n != "redis")
                raise AssertionError(f"trial never {what}: {row.status} {row.attempts}\n{logs}")
            time.sleep(0.1)


def child_pid(trial: Trial) -> int:
    """The pid of the worker child process that claimed a trial (``worker`` is host:pid)."""
    assert trial.worker
    return int(trial.worker.rsplit(":", 1)[1])


@contextlib.contextmanager
def process_stack(data_dir: Path, **settings: str) -> Iterator[Stack]:
    """Migrate a fresh database, start a private Redis, the api and one worker ("w1")."""
    with fresh_database("archbench_stack") as db_url:
        redis = PrivateRedis(data_dir / "redis.log")
        redis.start()
        # Auth off on purpose (a distributed api refuses that without ALLOW_NO_AUTH).
        env = base_env(
            data_dir,
            ARCHBENCH_DATABASE_URL=db_url,
            ARCHBENCH_BROKER_URL=redis.url,
            **{"ARCHBENCH_ALLOW_NO_AUTH": "true", **settings},
        )
        py = [sys.executable, "-m", "cli.main"]
        subprocess.run([*py, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir, redis=redis)
        stack.logs = {"api": data_dir / "api.log", "redis": redis.log}
        stack.procs["api"] = start([*py, "api", "--port", str(port)], env, stack.logs["api"])
        try:
            stack.start_worker("w1")
            wait_http(stack.url, stack.procs["api"], stack.logs["api"])
            yield stack
        finally:
            for proc in stack.procs.values():
                stop(proc)
            redis.stop()
            if stack._engine is not None:
                stack._engine.dispose()


def alive(pid: int) -> bool:
    """Whether a process exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True
