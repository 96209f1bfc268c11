"""api.cache.TTLCache: expiry, bounds, and one load per key however many callers miss at once."""

from __future__ import annotations

import asyncio

import pytest

from api.cache import TTLCache


def test_entries_expire_and_can_be_dropped() -> None:
    async def main() -> None:
        cache = TTLCache[str, int](0.2)
        loads = 0

        async def load() -> int:
            nonlocal loads
            loads += 1
            return loads

        assert await cache.get_or_load("a", load) == 1
        assert await cache.get_or_load("a", load) == 1  # fresh: no second load
        await asyncio.sleep(0.25)
        assert await cache.get_or_load("a", load) == 2  # expired: loaded again
        cache.drop("a")
        assert cache.get("a") is None
        assert await cache.get_or_load("a", load) == 3

    asyncio.run(main())


def test_concurrent_misses_share_one_load() -> None:
    async def main() -> None:
        cache = TTLCache[str, str](0)  # caching off: the single flight still applies
        release = asyncio.Event()
        loads = 0

        async def load() -> str:
            nonlocal loads
            loads += 1
            await release.wait()
            return "body"

        tasks = [asyncio.create_task(cache.get_or_load("k", load)) for _ in range(50)]
        await asyncio.sleep(0.05)
        release.set()
        assert await asyncio.gather(*tasks) == ["body"] * 50
        assert loads == 1
        assert cache.get("k") is None  # ttl 0: nothing kept once the flight landed
        assert await cache.get_or_load("k", load) == "body"
        assert loads == 2

    asyncio.run(main())


def test_errors_and_none_reach_every_waiter_and_are_not_cached() -> None:
    async def main() -> None:
        cache = TTLCache[str, str](60)
        release = asyncio.Event()
        calls = 0

        async def failing() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            raise LookupError("no such comparison")

        tasks = [asyncio.create_task(cache.get_or_load("k", failing)) for _ in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, LookupError) for r in results)
        assert calls == 1

        async def missing() -> str | None:
            return None

        assert await cache.get_or_load("k", missing) is None
        assert cache.get("k") is None

        async def found() -> str:
            return "now it exists"

        assert await cache.get_or_load("k", found) == "now it exists"

    asyncio.run(main())


def test_a_cancelled_loader_does_not_cancel_its_waiters() -> None:
    async def main() -> None:
        cache = TTLCache[str, str](60)
        first_started = asyncio.Event()

        async def slow() -> str:
            first_started.set()
            await asyncio.sleep(30)
            return "never"

        async def quick() -> str:
            return "loaded by the waiter"

        loader = asyncio.create_task(cache.get_or_load("k", slow))
        await first_started.wait()
        waiter = asyncio.create_task(cache.get_or_load("k", quick))
        await asyncio.sleep(0.01)
        loader.cancel()  # e.g. the client that caused the load disconnected
        with pytest.raises(asyncio.CancelledError):
            await loader
        assert await asyncio.wait_for(waiter, 5) == "loaded by the waiter"

    asyncio.run(main())


def test_bounded() -> None:
    cache = TTLCache[int, int](60, max_entries=3)
    for i in range(5):
        cache.put(i, i)
    assert [cache.get(i) for i in range(5)] == [None, None, 2, 3, 4]


def test_a_drop_during_a_load_keeps_its_stale_value_out() -> None:
    """A poll that read the row before a cancel committed must not cache the old status."""

    async def main() -> None:
        cache = TTLCache[str, str](60)
        release = asyncio.Event()

        async def before_the_write() -> str:
            await release.wait()
            return "running"

        async def after_the_write() -> str:
            return "cancelled"

        stale = asyncio.create_task(cache.get_or_load("k", before_the_write))
        await asyncio.sleep(0.01)
        cache.drop("k")  # the cancel committed while that read was under way
        # A poll after the drop does not join the old load; it reads afresh.
        assert await cache.get_or_load("k", after_the_write) == "cancelled"
        release.set()
        assert await stale == "running"  # its own caller still gets what it read
        assert cache.get("k") == "cancelled"  # ...but the cache keeps the fresh value

    asyncio.run(main())
