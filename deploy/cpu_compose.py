"""Write ``docker-compose.cpu.yml``, the compose file of a host without NVIDIA GPUs, from
``docker-compose.yml``: the same services with the worker's GPU reservation removed (a
compose override cannot remove it: lists merge) and the worker started with
``--concurrency 1`` instead of ``--gpus all``. Run it after changing docker-compose.yml
(``python deploy/cpu_compose.py``); tests/unit/test_compose_files.py checks the two agree."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# archbench on a host without NVIDIA GPUs: `docker compose -f docker-compose.cpu.yml up -d`.
# GENERATED from docker-compose.yml by `python deploy/cpu_compose.py`: edit that file, then run
# this again. The same services; the worker has no GPU reservation and trains one trial at a
# time (`--scale worker=N` for more). Comments are in docker-compose.yml and docs/deploy.md.
"""
CPU_WORKER = ["archbench", "worker", "--concurrency", "1"]


def cpu_compose(doc: dict[str, Any]) -> dict[str, Any]:
    """The CPU host's compose document from the reference one."""
    out = copy.deepcopy(doc)
    worker = out["services"]["worker"]
    worker.pop("deploy", None)
    worker["command"] = list(CPU_WORKER)
    return out


class _Plain(yaml.SafeDumper):
    """Every value written out where it is used: no ``&id001`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(source: str) -> str:
    """The text of docker-compose.cpu.yml for the text of docker-compose.yml."""
    doc = cpu_compose(yaml.safe_load(source))
    body = yaml.dump(doc, Dumper=_Plain, sort_keys=False, width=200, default_flow_style=False)
    return HEADER + body


def main() -> int:
    source = (ROOT / "docker-compose.yml").read_text()
    (ROOT / "docker-compose.cpu.yml").write_text(render(source))
    print("wrote docker-compose.cpu.yml", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
