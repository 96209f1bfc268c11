"""worker.memory's parts that need no service: the peak sampler, the rule, the problem."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.config import Settings
from worker.memory import (
    MEMORY_KILL_FRACTION,
    PeakSampler,
    fail_killed_for_memory,
    memory_given,
    memory_problem,
    peak_file,
)


def test_the_sampler_writes_this_process_s_peak_and_removes_it_after() -> None:
    with PeakSampler("t-sampler") as sampler:
        path = peak_file(os.getppid(), "t-sampler")
        written = int(path.read_text())
        kernel = next(
            int(line.split()[1]) * 1024
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmHWM:")
        )
        assert 0 < written <= kernel
        assert sampler.peak == written
    assert not path.exists()


def test_the_memory_given_is_the_setting_when_set() -> None:
    assert memory_given(Settings(worker_memory_mb=512)) == 512 * 2**20
    assert (memory_given(Settings()) or 0) > 0  # the cgroup's or the machine's


def test_the_problem_names_the_signal_and_the_peak() -> None:
    problem = memory_problem(signal.SIGKILL, 700 * 2**20, 800 * 2**20)
    assert problem["type"].endswith("/memory-killed")
    assert problem["title"] == "Trial killed for memory"
    assert "SIGKILL (signal 9)" in problem["detail"]
    assert "peak memory of 700 MiB" in problem["detail"]
    assert "of 800 MiB given" in problem["detail"]


def _recorded(trial_id: str, peak: int) -> Path:
    # As a child of this process would write it (the parent reads under its own pid).
    path = peak_file(os.getpid(), trial_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(peak))
    return path


def test_a_kill_below_the_share_or_by_another_signal_is_not_a_memory_kill() -> None:
    """Neither touches the database: the retry path keeps them."""
    settings = Settings(worker_memory_mb=1000)
    below = int((MEMORY_KILL_FRACTION - 0.01) * 1000 * 2**20)
    _recorded("t-below", below)
    assert fail_killed_for_memory("t-below", 1, signal.SIGKILL, settings) is False
    _recorded("t-term", 2000 * 2**20)
    assert fail_killed_for_memory("t-term", 1, signal.SIGTERM, settings) is False
    # Nothing recorded (the child died before sampling): not judged a memory kill either.
    assert fail_killed_for_memory("t-none", 1, signal.SIGKILL, settings) is False
