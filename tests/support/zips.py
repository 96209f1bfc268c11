"""Zip archives written byte by byte, for what ``zipfile`` is too slow (or too honest) to make."""

from __future__ import annotations

import struct

__all__ = ["empty_members"]


def empty_members(n: int, *, declare: int | None = None) -> bytes:
    """A zip of ``n`` empty stored members ``m0000000``..., with zip64 end records (so any
    ``n``); ``declare`` overrides the member count the end records state."""
    local: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for i in range(n):
        name = b"m%07d" % i
        header = struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0
        )
        local.append(header + name)
        central.append(
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0x21,
                0,
                0,
                0,
                len(name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + name
        )
        offset += len(header) + len(name)
    directory = b"".join(central)
    count = n if declare is None else declare
    record_at = offset + len(directory)
    zip64 = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(directory), offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(local) + directory + zip64 + locator + end
