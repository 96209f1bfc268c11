"""A real MLflow tracking server (``mlflow server``) for the export tests, and reads of what
it stores through its REST API (not through the MLflow client the export itself uses).

The project depends on mlflow-skinny, which cannot serve: the server needs the full ``mlflow``
package (Flask, its SQLAlchemy store, the artifact proxy). The ``dev`` extra installs it, so
``make install`` gives the test suite a server; ``ARCHBENCH_TEST_MLFLOW_SERVER`` may name the
``mlflow`` executable of another install instead (a separate virtual environment, say).
Without either the test is skipped, and under CI=true it fails.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.services import CI, free_port, stop

SERVER_ENV = "ARCHBENCH_TEST_MLFLOW_SERVER"


def server_command() -> list[str]:
    """How to run ``mlflow``: the executable named by ARCHBENCH_TEST_MLFLOW_SERVER, else this
    interpreter's full mlflow package; skip (fail under CI) when neither is there."""
    named = os.environ.get(SERVER_ENV)
    if named:
        return [named]
    try:
        importlib.metadata.distribution("mlflow")  # the full package, not mlflow-skinny
    except importlib.metadata.PackageNotFoundError:
        why = (
            "an MLflow tracking server needs the full mlflow package (pip install -e '.[dev]', "
            f"or {SERVER_ENV}=/path/to/mlflow)"
        )
        if CI:
            pytest.fail(f"{why}, and CI=true forbids skipping it", pytrace=False)
        pytest.skip(why)
    return [sys.executable, "-m", "mlflow"]


@contextlib.contextmanager
def tracking_server(folder: Path, timeout: float = 300) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, its runs in SQLite and its artifacts under
    ``folder`` (proxied: a client uploads them over HTTP); yields its URI, stops it after."""
    port = free_port()
    log = folder / "mlflow-server.log"
    cmd = [
        *server_command(),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(uri, proc, log, timeout)
        yield uri
    finally:
        stop(proc)


def _wait_healthy(uri: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until ``/health`` answers (a new store is migrated first: a minute on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


class Rest:
    """MLflow's REST API 2.0, as a browser or another tool reads the store."""

    def __init__(self, uri: str) -> None:
        self.http = httpx.Client(base_url=uri, timeout=30)

    def _get(self, route: str, **params: Any) -> Any:
        answer = self.http.get(route, params=params)
        answer.raise_for_status()
        return answer

    def experiment_id(self, name: str) -> str:
        found = self._get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)
        return str(found.json()["experiment"]["experiment_id"])

    def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every run of the experiment, its tags, params and metrics as plain dicts."""
        answer = self.http.post(
            "/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment_id], "max_results": 1000},
        )
        answer.raise_for_status()
        return [_flat(run) for run in answer.json().get("runs", [])]

    def artifacts(self, run_id: str) -> set[str]:
        found = self._get("/api/2.0/mlflow/artifacts/list", run_id=run_id).json()
        return {f["path"] for f in found.get("files", [])}

    def artifact(self, run_id: str, path: str) -> bytes:
        """An artifact's bytes, downloaded the way MLflow's UI does."""
        return bytes(self._get("/get-artifact", run_uuid=run_id, path=path).content)


def _flat(run: dict[str, Any]) -> dict[str, Any]:
    data = run.get("data", {})
    return {
        "id": run["info"]["run_id"],
        "name": run["info"].get("run_name"),
        "status": run["info"]["status"],
        "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
        "params": {p["key"]: p["value"] for p in data.get("params", [])},
        "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
    }
