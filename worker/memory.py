"""A trial killed for memory ends failed, saying so, instead of being retried into the same kill.

The kernel's OOM killer ends a process with SIGKILL: nothing runs in it, so the child cannot
say why it died. Two halves, on one host:

- in the child, ``PeakSampler`` samples the process's peak RSS (the kernel's ``VmHWM``,
  reset when the trial starts) about once a second while the trial trains, and keeps it in a
  small file named by the trial, in a folder of the parent's;
- in the parent, Celery hands a child lost to a signal to its request's ``on_failure`` as
  billiard's ``WorkerLostError`` ("Worker exited prematurely: signal 9 (SIGKILL)").
  ``TrainRequest`` reads the child's last peak there. A SIGKILL with the peak at least
  ``MEMORY_KILL_FRACTION`` of the memory the process was given (``worker_memory_mb``, else
  the cgroup's limit, else the machine's) ends the trial failed with a ``MemoryKilled``
  problem naming the signal and the peak, before the message goes back to the queue (the
  redelivery then meets an ended trial and is dropped). Any other loss keeps the usual path:
  the message is redelivered and the sweeper retries the trial when its lease expires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from celery.exceptions import WorkerLostError
from celery.worker.request import Request

from core.config import Settings, get_settings
from core.errors import MemoryKilled, Problem
from core.store.checkpoints import remove_checkpoint
from core.store.db import session_scope
from core.trials.finalize import finalize_comparison
from core.trials.lifecycle import fail_running_in

__all__ = [
    "MEMORY_KILL_FRACTION",
    "PeakSampler",
    "TrainRequest",
    "fail_killed_for_memory",
    "memory_given",
    "memory_problem",
    "peak_file",
]

log = logging.getLogger("archbench.worker")

MEMORY_KILL_FRACTION = 0.8  # a SIGKILL at this share of the memory given is the OOM killer's
SAMPLE_SECONDS = 1.0
_SIGNAL = re.compile(r"signal (\d+)")
_MIB = 1024 * 1024


def peak_file(parent_pid: int, trial_id: str) -> Path:
    """Where a child of ``parent_pid`` keeps the peak RSS (bytes) of the trial it trains."""
    return Path(tempfile.gettempdir()) / f"archbench-peaks-{parent_pid}" / trial_id


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmHWM, VmRSS) in bytes; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakSampler:
    """Samples this process's peak RSS while a trial trains and keeps it in ``peak_file``."""

    def __init__(self, trial_id: str) -> None:
        self.path = peak_file(os.getppid(), trial_id)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archbench-peak", daemon=True)

    def __enter__(self) -> PeakSampler:
        # The high-water mark counts from here, not from an earlier trial of this child.
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    def sample(self) -> int:
        """Read the peak now and write it down; returns it in bytes."""
        now = _status_bytes("VmHWM") or _status_bytes("VmRSS") or 0
        if now > self.peak:
            self.peak = now
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(str(self.peak))
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("peak memory not recorded: %s", exc)
        return self.peak

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()


def memory_given(settings: Settings) -> int | None:
    """The memory a worker process is given, in bytes: the setting, the cgroup's limit, or
    the machine's."""
    if settings.worker_memory_mb:
        return settings.worker_memory_mb * _MIB
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            return int(text)
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return None


def memory_problem(signum: int, peak: int, given: int) -> Problem:
    """The problem stored on a trial whose process was killed for memory."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = "a signal"
    return MemoryKilled(
        f"the process training this trial was killed by {name} (signal {signum}) with a peak "
        f"memory of {peak / _MIB:.0f} MiB (resident set, sampled while it trained) of "
        f"{given / _MIB:.0f} MiB given: the kernel's out-of-memory killer. It is not tried "
        "again: it would die the same way. Use a smaller model, batch or analysis, or give "
        "the worker more memory."
    ).to_problem()


def fail_killed_for_memory(
    trial_id: str, child_pid: int, signum: int, settings: Settings | None = None
) -> bool:
    """End ``trial_id`` failed when its child ``child_pid`` died by SIGKILL near the memory it
    was given; True when it did. Guarded: only the trial still running in that child."""
    settings = settings or get_settings()
    path = peak_file(os.getpid(), trial_id)
    try:
        peak = int(path.read_text())
    except (OSError, ValueError):
        return False
    path.unlink(missing_ok=True)
    given = memory_given(settings)
    if signum != signal.SIGKILL or not given or peak < MEMORY_KILL_FRACTION * given:
        return False
    worker = f"{socket.gethostname()}:{child_pid}"
    with session_scope() as s:
        comparison_id = fail_running_in(
            s, trial_id, worker=worker, error=memory_problem(signum, peak, given)
        )
    if comparison_id is None:
        return False
    log.error("trial %s: killed for memory (peak %d MiB)", trial_id, peak // _MIB)
    remove_checkpoint(settings, trial_id)
    with session_scope() as s:
        finalize_comparison(s, comparison_id)
    return True


class TrainRequest(Request):  # type: ignore[misc]
    """The train task's request in the Celery parent: a child lost to a signal is checked for
    a memory kill before the message goes back to the queue."""

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = getattr(exc_info, "exception", None)
        exc = getattr(exc, "exc", exc)  # ExceptionWithTraceback
        match = _SIGNAL.search(str(exc)) if isinstance(exc, WorkerLostError) else None
        if match and self.args and self.worker_pid:
            try:
                fail_killed_for_memory(str(self.args[0]), int(self.worker_pid), int(match[1]))
            except Exception:
                log.exception("trial %s: the memory-kill check failed", self.args[0])
        return super().on_failure(exc_info, send_failed_event, return_ok)
