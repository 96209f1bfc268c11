"""A trial's data as its worker loads it: the dataset, then the trial's split, while a
cancel is still heard (the load runs in a thread; the caller's stop check is asked every
``CHECK_INTERVAL`` seconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from core.config import Settings
from core.data.uploads import upload_path_of
from core.spec import StoredSpec

if TYPE_CHECKING:
    from worker.datasets import Split

__all__ = ["interruptible", "load_split"]

CHECK_INTERVAL = 1.0  # seconds between cancel checks while the dataset loads

T = TypeVar("T")


def load_split(
    settings: Settings,
    comparison_id: str,
    spec: StoredSpec,
    seed: int,
    should_stop: Callable[[], str | None],
) -> Split | None:
    """The trial's split (its seed's own in the per-seed design; the probe set is the
    comparison's); None when ``should_stop`` said stop first. A cancel is honoured while the
    data loads (a first download can take minutes)."""
    from worker.datasets import load_dataset, make_split

    dataset_ref = spec.dataset  # a spec stored before 1.1 loads with its fixed split

    def load() -> Split:
        ds = load_dataset(
            dataset_ref.name,
            cache_dir=settings.dataset_cache,
            upload_dir=settings.data_dir / "uploads",
            upload_path=upload_path_of(comparison_id, dataset_ref.name),
        )
        return make_split(
            ds,
            test_split=dataset_ref.test_split,
            validation_split=dataset_ref.validation_split,
            split_seed=dataset_ref.split_seed,
            max_samples=dataset_ref.max_samples,
            design=dataset_ref.split,
            seed=seed,
            probe_size=spec.probe_reserved,
        )

    return None if should_stop() else interruptible(load, should_stop)


def interruptible(load: Callable[[], T], should_stop: Callable[[], str | None]) -> T | None:
    """``load()`` in a thread, asking ``should_stop`` every ``CHECK_INTERVAL`` while it runs;
    None when told to stop first (the thread then finishes in the background: a download
    ends up in the cache, nothing else uses its result)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = load()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="archbench-load", daemon=True)
    thread.start()
    while True:
        thread.join(CHECK_INTERVAL)
        if not thread.is_alive():
            break
        if should_stop():
            return None
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
