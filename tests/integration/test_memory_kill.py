"""A trial whose training child is killed the way the OOM killer kills (SIGKILL, its peak RSS
near the memory the worker was given) ends failed at once, saying so, and is not retried.

The worker is told it was given 64 MiB (``ARCHBENCH_WORKER_MEMORY_MB``): any TensorFlow child
is past that, so the test's SIGKILL of the child mid-trial is, to the worker, a kill at the
memory limit. The other losses keep being retried (tests/integration/test_recovery_processes).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import small_cnn, tiny_spec, wait_done
from tests.support.stack import Stack, alive, child_pid, process_stack

pytestmark = [pytest.mark.services, pytest.mark.worker]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {
        "ARCHBENCH_LEASE_SECONDS": "10",
        "ARCHBENCH_SWEEP_SECONDS": "1",
        "ARCHBENCH_MAX_ATTEMPTS": "3",
        "ARCHBENCH_WORKER_MEMORY_MB": "64",
    }
    with process_stack(tmp_path_factory.mktemp("oom"), **settings) as s:
        yield s


def peak_rss(pid: int) -> int:
    """The process's peak resident set in bytes, as the kernel counts it (VmHWM)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    assert match, text
    return int(match[1]) * 1024


def test_a_child_killed_at_its_memory_limit_fails_once_with_the_signal_and_peak(
    stack: Stack,
) -> None:
    spec = tiny_spec("oom", seeds=[0], epochs=10, samples=1500, variants=[small_cnn()])
    with stack.client() as client:
        resp = client.post("/v1/comparisons", json=spec)
        assert resp.status_code == 202, resp.text
        cid = str(resp.json()["id"])
        (tid,) = stack.trial_ids(cid)
        row = stack.wait_trial(tid, lambda t: t.epochs_done >= 2, what="2 epochs in")
        pid = child_pid(row)
        time.sleep(1.5)  # a sample of the peak after the last epoch's
        seen = peak_rss(pid)
        os.kill(pid, signal.SIGKILL)
        done = wait_done(client, cid, timeout=60)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3 * 1.0)  # a redelivery or sweep that would retry it has had its chance
        trial = stack.trial(tid)
    assert (trial.status, trial.attempts) == ("failed", 1), (trial.status, trial.error)
    assert trial.error is not None
    assert trial.error["type"].endswith("/memory-killed")
    detail = trial.error["detail"]
    assert "SIGKILL (signal 9)" in detail
    match = re.search(r"peak memory of (\d+) MiB", detail)
    assert match, detail
    reported = int(match[1]) * 1024 * 1024
    # Sampled each second in the child, so at most the kernel's high-water mark, and close.
    assert 0.8 * seen <= reported <= seen + 1024 * 1024, (reported, seen)
    assert "of 64 MiB given" in detail
    assert done["status"] == "failed"
    assert "memory" in str(done["error"])
    log = "".join(stack.log(n) for n in stack.logs)
    assert "killed for memory" in log
    print(f"\nkilled at a peak of {reported / 2**20:.0f} MiB (kernel: {seen / 2**20:.0f} MiB)")
