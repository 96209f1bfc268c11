"""Short-lived per-process caches for the hot read paths: status polls and API-key lookups.

Clients poll ``GET /v1/comparisons/{id}`` in loops (scripts, CI jobs, dashboards), often many
of them on the same comparison. Answering each poll from the database costs a thread hop and
several round trips to Postgres; with ``ARCHBENCH_STATUS_CACHE_SECONDS`` (default 1 s) one
api process asks the database at most once per comparison and interval, and every other poll
is answered on the event loop from memory. A poll may therefore be up to that long behind the
database (the event stream, ``/events``, is the live path); a write made through the same
process (cancel) drops the entry at once. Only found comparisons are cached, keyed by tenant
and id, so a cached answer never crosses tenants and a 404 is always fresh.

Concurrent misses on one key share a single database read (single flight), so the moment an
entry expires under 50 pollers costs one query, not 50.

API keys: with auth on, every request's key is looked up in the database. A found key's
tenant is kept for ``ARCHBENCH_KEY_CACHE_SECONDS`` (default 5 s): a revoked key stops working
within that time, in every api process (``archbench keys revoke`` says so). Unknown keys are
never cached, so a key that was just created works at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A bounded map whose entries expire ``ttl`` seconds after they were loaded.

    Made for one event loop (an api process's): ``get_or_load`` runs the loader once per key
    however many callers miss at the same time. ``ttl <= 0`` turns caching off.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V | None]] = {}
        # Bumped by every drop: a load that began before a drop returns its value to its
        # callers but does not cache it (it may have read the row before the write).
        self._drops = 0

    def get(self, key: K) -> V | None:
        """The cached value, or None when missing or expired."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (time.monotonic() + self.ttl, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        """Forget ``key`` after a write that changes it (call it on the event loop): the next
        read loads afresh, and a load already under way is neither joined nor cached."""
        self._drops += 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value, else ``load()``'s (cached when not None); one load per key at once.

        A loader's exception reaches every caller that waited on it and caches nothing.
        """
        while True:
            hit = self.get(key)
            if hit is not None:
                return hit
            pending = self._loading.get(key)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled, not the load it waited on
                # The caller that was loading went away: load again (or wait on a new load).
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        drops = self._drops
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited future does not warn
            raise
        else:
            future.set_result(value)
            if value is not None and self._drops == drops:
                self.put(key, value)
            return value
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
