"""Tenants share the workers: a newcomer's trial is not queued behind another tenant's backlog.

A private stack (Postgres, its own Redis, the api with auth on, one worker process with one
child): tenant ``a`` submits a comparison of twelve trials, and once its first trial runs,
tenant ``b`` submits one. With each tenant's share of the broker capped
(``ARCHBENCH_DISPATCH_PER_TENANT``), ``b``'s first trial waits for the trial running and the
``a`` trials already in the broker, not for ``a``'s whole backlog.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import small_mlp, tiny_spec
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.services, pytest.mark.worker]

SHARE = 1  # the default of ARCHBENCH_DISPATCH_PER_TENANT, set explicitly
BACKLOG_SEEDS = list(range(6))  # two variants: twelve trials


def _client(stack: Stack, tenant: str) -> httpx.Client:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", "--tenant", tenant, "--name", "t"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _submit(client: httpx.Client, name: str, seeds: list[int]) -> str:
    spec = tiny_spec(name, seeds=seeds, epochs=1, variants=[small_mlp("x"), small_mlp("y")])
    resp = client.post("/v1/comparisons", json=spec)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _first_start(stack: Stack, trial_ids: list[str], timeout: float) -> datetime:
    deadline = time.monotonic() + timeout
    while True:
        started = [t.started_at for t in map(stack.trial, trial_ids) if t.started_at]
        if started:
            return min(started)
        assert stack.procs["w1"].poll() is None, stack.log("w1")[-3000:]
        assert time.monotonic() < deadline, stack.log("w1")[-3000:]
        time.sleep(0.1)


def test_a_newcomers_trial_starts_before_another_tenants_backlog_drains(tmp_path: Path) -> None:
    settings = {"ARCHBENCH_AUTH": "true", "ARCHBENCH_DISPATCH_PER_TENANT": str(SHARE)}
    with process_stack(tmp_path, **settings) as stack:
        a, b = _client(stack, "a"), _client(stack, "b")
        backlog = stack.trial_ids(_submit(a, "backlog", BACKLOG_SEEDS))
        _first_start(stack, backlog, timeout=180)  # the worker is busy with a's trials
        newcomer_id = _submit(b, "newcomer", [0])
        submitted = stack.trial(stack.trial_ids(newcomer_id)[0]).created_at
        b_start = _first_start(stack, stack.trial_ids(newcomer_id), timeout=180)
        rows = [stack.trial(i) for i in backlog]

    started_before = [r for r in rows if r.started_at is not None and r.started_at < b_start]
    ran = sorted(
        (r for r in rows if r.started_at is not None and r.finished_at is not None),
        key=lambda r: r.started_at or b_start,
    )
    assert len(ran) >= 2, "fewer than two of a's trials ended"
    freed = ran[0].finished_at  # the worker's first trial (the cold one) ended: it freed up
    assert freed is not None
    trial_time = max(r.finished_at - r.started_at for r in ran[1:])  # type: ignore[operator]
    waited = b_start - submitted
    print(
        f"b waited {waited.total_seconds():.1f} s after its submit, "
        f"{(b_start - freed).total_seconds():.1f} s after the worker first freed up; "
        f"a's warm trials took at most {trial_time.total_seconds():.1f} s; "
        f"{len(started_before)} of a's {len(rows)} trials started before b's first"
    )
    # b's first trial waited for the one running and a's share in the broker (a submit and a
    # claim may race, so one more), not for the backlog: most of a's trials had not started.
    assert len(started_before) <= SHARE + 2, len(started_before)
    assert b_start - freed <= SHARE * trial_time + timedelta(seconds=5), (b_start, freed)
