"""An api with ``ARCHBENCH_AUTH=true`` on a private Postgres database, for the security tests.

Its broker is an embedded SQLite file that no worker reads, so its comparisons stay queued:
that keeps the per-tenant quota deterministic, and no other test's worker or sweeper can
touch its rows (a sweeper that sees its broker reset re-sends every queued trial of its
database). Training on uploads is tested through the ``distributed`` fixture instead.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import (
    ROOT,
    base_env,
    free_port,
    fresh_database,
    start,
    stop,
    wait_http,
)

PY = [sys.executable, "-m", "cli.main"]


@dataclass
class SecuredApi:
    url: str
    env: dict[str, str]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, tenant: str | None = None, key: str | None = None) -> httpx.Client:
        key = key or (self.keys[tenant] if tenant else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PY, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    def new_key(self, tenant: str, name: str = "test") -> str:
        done = self.cli("keys", "create", "--tenant", tenant, "--name", name)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@contextmanager
def secured_api(data_dir: Path, tenants: tuple[str, ...], **extra: str) -> Iterator[SecuredApi]:
    """Migrate a private database, create one key per tenant, start the api with auth on."""
    with fresh_database("archbench_sec") as db:
        env = base_env(data_dir, ARCHBENCH_DATABASE_URL=db, ARCHBENCH_AUTH="true", **extra)
        subprocess.run([*PY, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        port = free_port()
        api = SecuredApi(url=f"http://127.0.0.1:{port}", env=env, log=data_dir / "api.log")
        for tenant in tenants:
            api.keys[tenant] = api.new_key(tenant)
        proc = start([*PY, "api", "--port", str(port)], env, api.log)
        try:
            wait_http(api.url, proc, api.log)
            yield api
        finally:
            stop(proc)
