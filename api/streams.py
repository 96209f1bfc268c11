"""Event streams (``/events``) that cannot starve the api of database connections.

A stream never holds a database connection between its reads. One **feed** per comparison and
api process reads the comparison (status, trials, new epoch rows) every ``EVENT_POLL_SECONDS``
in a short session and hands the result to every open stream of that comparison; 200 streams
on one comparison cost one read per interval, not 200. A stream that joins a running feed
replays the history with one read of its own. Every read, the feeds' and the replays', goes
through one gate of ``ARCHBENCH_STREAM_DB_READERS`` (default 2) slots, so streams use at most
that many pooled connections and worker threads however many are open: the rest of the api
keeps the remaining connections and threads.

Open streams are limited per tenant (``ARCHBENCH_MAX_STREAMS_PER_TENANT``, default 20) and per
api process (``ARCHBENCH_MAX_STREAMS``, default 500), and the process's streams are shared: a
tenant that already holds streams may open another only while it holds fewer than the process
has free beyond a reserve (a twentieth of ``ARCHBENCH_MAX_STREAMS``) kept for tenants that hold
none. Each tenant's share so shrinks as the process fills, and 25 tenants at 20 streams each
no longer lock everyone else out (with the defaults, 29 more tenants still get one each).
Beyond any of these ``/events`` answers 429 problem+json with ``Retry-After``. A client that
stops reading is dropped once ``QUEUE_LIMIT`` snapshots wait for it (its stream ends;
reconnecting replays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from core.errors import TooManyRequests

__all__ = ["EventHub", "LimitedStreamingResponse", "StreamLimits", "Subscription"]

log = logging.getLogger("archbench.api")

QUEUE_LIMIT = 64
IDLE_FACTOR = 4  # an unchanged comparison is read every 0.5, 1, 2, 2, ... s
RETRY_AFTER_SECONDS = 30

Snapshot = dict[str, Any]
Reader = Callable[[str, dict[str, int]], Snapshot]


class StreamLimits:
    """Counts open streams per tenant and in this process (one event loop: no locks)."""

    def __init__(self, per_tenant: int, total: int) -> None:
        self.per_tenant = per_tenant
        self.total = total
        self.reserve = total // 20  # free streams only tenants holding none may take
        self.open: dict[str, int] = {}

    @property
    def count(self) -> int:
        return sum(self.open.values())

    def acquire(self, tenant: str) -> None:
        """Take a slot for ``tenant`` or raise TooManyRequests (429, Retry-After)."""
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if self.open.get(tenant, 0) >= self.per_tenant:
            raise TooManyRequests(
                f"This tenant already has {self.per_tenant} open event streams "
                "(ARCHBENCH_MAX_STREAMS_PER_TENANT); close one, or poll the comparison.",
                headers=headers,
            )
        free = self.total - self.count
        if free <= 0:
            raise TooManyRequests(
                f"This api process already serves {self.total} event streams "
                "(ARCHBENCH_MAX_STREAMS); retry later, or poll the comparison.",
                headers=headers,
            )
        held = self.open.get(tenant, 0)
        if held and held >= free - self.reserve:
            raise TooManyRequests(
                f"This tenant holds {held} event streams and this api process has {free} left "
                "(ARCHBENCH_MAX_STREAMS, shared between tenants: the last ones go to tenants "
                "with none); close one, retry later, or poll the comparison.",
                headers=headers,
            )
        self.open[tenant] = held + 1

    def release(self, tenant: str) -> None:
        left = self.open.get(tenant, 0) - 1
        if left > 0:
            self.open[tenant] = left
        else:
            self.open.pop(tenant, None)


class LimitedStreamingResponse(StreamingResponse):
    """A StreamingResponse that gives its stream slot back however the response ends
    (finished, client gone, cancelled before the first byte)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[Snapshot | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    replay: bool = False  # joined a feed that had already read: replay with a read of its own


@dataclass(eq=False)
class _Feed:
    comparison_id: str
    subscribers: set[_Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    has_read: bool = False


class Subscription:
    """One stream's view of a feed."""

    def __init__(self, hub: EventHub, comparison_id: str, sub: _Subscriber) -> None:
        self._hub = hub
        self._id = comparison_id
        self._sub = sub

    async def next(self, timeout: float) -> Snapshot | bool | None:
        """The next snapshot; ``None`` when the feed ended (or dropped this stream); ``False``
        when nothing happened for ``timeout`` seconds (time for a keep-alive)."""
        if self._sub.replay:
            # Subscribed first, then read: whatever the feed publishes after this read is
            # queued; epochs already seen are skipped by the stream's own cursor.
            self._sub.replay = False
            return await self._hub.read(self._id, {})
        try:
            return await asyncio.wait_for(self._sub.queue.get(), timeout)
        except TimeoutError:
            return False


class EventHub:
    """The feeds of one api process (one event loop)."""

    def __init__(
        self, read: Reader, *, interval: float, readers: int, terminal: frozenset[str]
    ) -> None:
        self._read = read
        self.interval = interval
        self.terminal = terminal
        self._gate = asyncio.Semaphore(readers)
        self.loop = asyncio.get_running_loop()
        self.feeds: dict[str, _Feed] = {}
        self.reads = 0  # database reads made, for tests and the benchmark

    async def read(self, comparison_id: str, epochs_seen: dict[str, int]) -> Snapshot:
        """One snapshot, read in a short session on a worker thread, through the gate."""
        async with self._gate:
            self.reads += 1
            return await run_in_threadpool(self._read, comparison_id, dict(epochs_seen))

    @contextlib.asynccontextmanager
    async def subscribe(self, comparison_id: str) -> AsyncIterator[Subscription]:
        """Follow a comparison: the subscription gives its history, then each change."""
        feed = self.feeds.get(comparison_id)
        if feed is None:
            feed = self.feeds[comparison_id] = _Feed(comparison_id)
            feed.task = asyncio.create_task(self._run(feed))
        sub = _Subscriber(replay=feed.has_read)
        feed.subscribers.add(sub)
        try:
            yield Subscription(self, comparison_id, sub)
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers and self.feeds.get(comparison_id) is feed:
                del self.feeds[comparison_id]
                if feed.task is not None:
                    feed.task.cancel()

    async def _run(self, feed: _Feed) -> None:
        seen: dict[str, int] = {}
        last: tuple[Any, ...] | None = None
        delay = self.interval
        while True:
            try:
                snap = await self.read(feed.comparison_id, seen)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away for a moment: try again
                log.warning("event feed read failed: %s", type(exc).__name__)
                await asyncio.sleep(self.interval)
                continue
            for row in snap["epochs"]:
                seen[row["trial_id"]] = max(seen.get(row["trial_id"], 0), row["epoch"])
            feed.has_read = True
            key = (snap["status"], snap["progress"], snap["trials"], snap["error"])
            ended = snap["status"] in self.terminal
            changed = bool(snap["epochs"]) or key != last
            # Nothing happening (a queued comparison, a long epoch): read less often, up to
            # IDLE_FACTOR times the interval; the first change brings it back.
            delay = self.interval if changed else min(delay * 2, self.interval * IDLE_FACTOR)
            if changed or ended:
                last = key
                for sub in list(feed.subscribers):
                    self._offer(feed, sub, snap)
            if ended:
                for sub in list(feed.subscribers):
                    self._offer(feed, sub, None)
                if self.feeds.get(feed.comparison_id) is feed:
                    del self.feeds[feed.comparison_id]
                return
            await asyncio.sleep(delay)

    @staticmethod
    def _offer(feed: _Feed, sub: _Subscriber, snap: Snapshot | None) -> None:
        try:
            sub.queue.put_nowait(snap)
        except asyncio.QueueFull:
            # A client that stopped reading: end its stream rather than queue without bound.
            log.warning("event stream dropped: the client stopped reading")
            feed.subscribers.discard(sub)
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)

    async def close(self) -> None:
        for feed in list(self.feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task
        self.feeds.clear()
