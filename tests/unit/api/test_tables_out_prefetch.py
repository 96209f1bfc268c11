"""A table answer reads its first chunk before the response starts (api.tables_out): a pool
timeout on that read is raised by the endpoint (a 503 problem+json), not after a 200."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.tables_out import TableFormat, prefetched, stream_table


def _timing_out() -> Iterator[dict[str, Any]]:
    raise PoolTimeout("QueuePool limit of size 1 overflow 0 reached")
    yield {}  # pragma: no cover - a generator


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_the_first_read_happens_before_the_response(fmt: TableFormat) -> None:
    with pytest.raises(PoolTimeout):
        stream_table(_timing_out(), columns=["a"], filename="t", fmt=fmt)


def test_prefetched_keeps_every_chunk() -> None:
    reads: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(3):
            reads.append(n)
            yield bytes([65 + n])

    out = prefetched(chunks())
    assert reads == [0]  # the first chunk was read already
    assert b"".join(out) == b"ABC"
    assert list(prefetched(iter(()))) == []
