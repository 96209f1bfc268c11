"""Read W&B's offline run files back, independently of the SDK that wrote them.

A ``.wandb`` file is a 7-byte header (``:W&B``, a magic number, a version) followed by
LevelDB-log records in 32 KiB blocks: each record a 7-byte header (CRC, length, type: full,
first, middle, last) and a chunk; a block's tail under 7 bytes is padding. Each record is a
``wandb_internal_pb2.Record`` protobuf (W&B's own message definitions)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def chunks(path: Path) -> Iterator[bytes]:
    """Each record's bytes, its fragments joined."""
    data = path.read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B", ident
    pos, parts = 7, []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if (length, kind) == (0, 0):
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            parts = [chunk]
        elif kind == MIDDLE:
            parts.append(chunk)
        elif kind == LAST:
            yield b"".join([*parts, chunk])


def _key(item: Any) -> str:
    return str(item.key or "/".join(item.nested_key))


@dataclass
class OfflineRun:
    """What a run file says: its identity, config, summary, history and artifacts."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, list[str]] = field(default_factory=dict)


def read_run(path: Path) -> OfflineRun:
    """The run in one ``run-<id>.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = OfflineRun()
    for data in chunks(path):
        record = pb.Record()  # type: ignore[attr-defined]
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.run_id, out.group, out.job_type = run.run_id, run.run_group, run.job_type
            out.name, out.notes = run.display_name, run.notes
            out.config.update({_key(i): json.loads(i.value_json) for i in run.config.update})
        elif kind == "config":
            out.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "artifact":
            paths = [m.path for m in record.artifact.manifest.contents]
            out.artifacts[record.artifact.name] = paths
    return out


def read_all(folder: Path) -> list[OfflineRun]:
    """Every offline run under ``folder`` (a ``wandb`` folder)."""
    return [read_run(p) for p in sorted(folder.glob("offline-run-*/run-*.wandb"))]
