"""Keeping a claimed trial's lease: a thread renews it while the trial trains.

Not to be confused with ``worker.heartbeat``, which says a worker process is alive (one row
per process in ``worker_heartbeats``); this renews one trial's lease in ``trials``.
"""

from __future__ import annotations

import logging
import threading
import time

from core.store.db import session_scope
from core.trials.lifecycle import LeaseLost, renew_lease

__all__ = ["LeaseRenewal"]

log = logging.getLogger("archbench.worker")


class LeaseRenewal:
    """Renews a trial's lease from a thread, every third of the lease, until stopped.

    A thread rather than the training callbacks: importing TensorFlow, loading a dataset, one
    slow batch or the final evaluation can each outlast a short lease. It gives up after
    ``limit`` seconds, so a child whose main thread hangs loses its trial to the sweeper.
    """

    def __init__(self, trial_id: str, owner: str, lease_seconds: int, limit: float) -> None:
        self.trial_id, self.owner, self.lease_seconds = trial_id, owner, lease_seconds
        self.deadline = time.monotonic() + limit
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archbench-lease", daemon=True)

    def __enter__(self) -> LeaseRenewal:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            if time.monotonic() > self.deadline:
                log.warning("trial %s: lease renewal past its time limit; stopping", self.trial_id)
                return
            try:
                with session_scope() as s:
                    renew_lease(
                        s, self.trial_id, owner=self.owner, lease_seconds=self.lease_seconds
                    )
            except LeaseLost:
                self.lost.set()
                return
            except Exception as exc:  # a database blip: the next renewal tries again
                log.warning("trial %s: lease renewal failed: %s", self.trial_id, exc)
