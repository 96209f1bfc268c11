"""The first key arrives with the deployment: an api in production mode on Postgres and Redis,
with no key in its database, starts with ``ARCHBENCH_BOOTSTRAP_KEY_FILE`` (a Docker secret)
and serves that key; a restart stores it once; a malformed one refuses the start in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.secured import PY
from tests.support.services import ROOT, base_env, free_port, fresh_database, start, stop, wait_http

pytestmark = pytest.mark.services

KEY = "ab_" + "0123456789abcdef" * 3


def _start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = start([*PY, "api", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_http(url, proc, log)
    return proc, url


def test_production_api_starts_with_a_bootstrap_key_and_serves_it(
    tmp_path: Path, redis_url: str
) -> None:
    secret = tmp_path / "bootstrap_key"
    secret.write_text(KEY + "\n")
    with fresh_database("archbench_boot") as db:
        env = base_env(
            tmp_path,
            ARCHBENCH_ENV="production",
            ARCHBENCH_AUTH="true",
            ARCHBENCH_DATABASE_URL=db,
            ARCHBENCH_BROKER_URL=redis_url,
            ARCHBENCH_BOOTSTRAP_KEY_FILE=str(secret),
            ARCHBENCH_BOOTSTRAP_TENANT="ops",
        )
        subprocess.run([*PY, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
        keys = subprocess.run(
            [*PY, "keys", "list", "--json"],
            env=env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        )
        assert keys.stdout.strip() == "[]"  # nothing but the secret brings the first key

        for attempt in range(2):  # a restart stores nothing twice
            log = tmp_path / f"api{attempt}.log"
            proc, url = _start_api(env, log)
            try:
                ok = httpx.get(f"{url}/v1/comparisons", headers={"Authorization": f"Bearer {KEY}"})
                assert ok.status_code == 200, ok.text
                assert ok.json()["items"] == []
                refused = httpx.get(f"{url}/v1/comparisons")
                assert refused.status_code == 401
            finally:
                stop(proc)
        listed = subprocess.run(
            [*PY, "keys", "list", "--json"],
            env=env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        )

        [row] = json.loads(listed.stdout)
        assert (row["tenant"], row["name"], row["prefix"]) == ("ops", "bootstrap", KEY[:10])

        # A key that is not an archbench key refuses the start, one line that says how.
        secret.write_text("hunter2\n")
        log = tmp_path / "bad.log"
        proc = start([*PY, "api", "--port", str(free_port())], env, log)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop(proc)
            pytest.fail("an api started with a malformed bootstrap key")
        text = log.read_text()
        assert proc.returncode != 0
        assert "the bootstrap key must start with 'ab_'" in text, text[-2000:]
        assert "Traceback" not in text
