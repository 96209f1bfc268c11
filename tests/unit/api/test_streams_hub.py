"""api.streams: many streams of one comparison share one reader; late joiners replay."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from api.streams import EventHub, StreamLimits
from core.errors import TooManyRequests


class Source:
    """A comparison whose state the test moves on; counts the reads made of it."""

    def __init__(self) -> None:
        self.reads = 0
        self.epoch = 0
        self.status = "running"
        self.lock = threading.Lock()

    def read(self, comparison_id: str, seen: dict[str, int]) -> dict[str, Any]:
        with self.lock:
            self.reads += 1
            epochs = [
                {"trial_id": "t", "epoch": e}
                for e in range(1, self.epoch + 1)
                if e > seen.get("t", 0)
            ]
            return {
                "id": comparison_id,
                "status": self.status,
                "progress": {"epochs_done": self.epoch},
                "trials": [{"id": "t", "epochs_done": self.epoch}],
                "epochs": epochs,
                "error": None,
            }


async def _follow(hub: EventHub, out: list[int]) -> None:
    async with hub.subscribe("c") as sub:
        while True:
            snap = await sub.next(5)
            if snap is None:
                return
            assert isinstance(snap, dict)
            out.extend(row["epoch"] for row in snap["epochs"])


def test_streams_share_one_reader_and_every_one_sees_every_epoch() -> None:
    async def scenario() -> tuple[int, list[list[int]]]:
        source = Source()
        hub = EventHub(source.read, interval=0.02, readers=2, terminal=frozenset({"succeeded"}))
        seen: list[list[int]] = [[] for _ in range(60)]
        early = [asyncio.create_task(_follow(hub, seen[i])) for i in range(50)]
        for epoch in range(1, 6):
            await asyncio.sleep(0.05)
            source.epoch = epoch
        late = [asyncio.create_task(_follow(hub, seen[i])) for i in range(50, 60)]
        await asyncio.sleep(0.05)
        source.epoch = 6
        await asyncio.sleep(0.05)
        source.status = "succeeded"
        await asyncio.wait_for(asyncio.gather(*early, *late), 5)
        assert not hub.feeds
        return source.reads, seen

    reads, seen = asyncio.run(scenario())
    for epochs in seen:
        assert sorted(set(epochs)) == [1, 2, 3, 4, 5, 6], epochs
    # One feed's reads (about one per interval) plus one replay per late joiner; one read per
    # stream and interval would be 60 times as many.
    assert reads < 60, reads


def test_limits_per_tenant_and_process() -> None:
    limits = StreamLimits(per_tenant=2, total=3)
    limits.acquire("a")
    limits.acquire("a")
    with pytest.raises(TooManyRequests, match="ARCHBENCH_MAX_STREAMS_PER_TENANT"):
        limits.acquire("a")
    limits.acquire("b")
    with pytest.raises(TooManyRequests, match=r"ARCHBENCH_MAX_STREAMS\)") as caught:
        limits.acquire("c")
    assert int(caught.value.headers["Retry-After"]) > 0
    limits.release("a")
    limits.acquire("c")
    assert limits.count == 3


def test_the_process_cap_is_shared_so_a_new_tenant_still_gets_a_stream() -> None:
    limits = StreamLimits(per_tenant=20, total=500)
    refused: list[str] = []
    for tenant in range(25):  # 25 tenants each ask for their 20 streams
        for _ in range(20):
            try:
                limits.acquire(f"heavy{tenant}")
            except TooManyRequests as exc:
                refused.append(exc.detail)
    assert refused
    assert all("shared between tenants" in detail for detail in refused)
    assert all(1 <= limits.open[f"heavy{t}"] <= 20 for t in range(25))
    assert limits.open["heavy0"] == 20  # early on, a tenant gets its whole allowance
    for newcomer in range(limits.reserve):  # then each newcomer still gets one
        limits.acquire(f"new{newcomer}")
    assert limits.count <= limits.total
    with pytest.raises(TooManyRequests):  # but not a second while others may need it
        limits.acquire("new0")
