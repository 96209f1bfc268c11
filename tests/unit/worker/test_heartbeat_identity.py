"""Two workers that share a hostname and a pid (two containers under host networking: the
same hostname, and each container numbers its processes from 1) are two heartbeats and two
series in /metrics, not one. Each worker runs in a PID namespace of its own (``unshare``),
as a container does, and writes its heartbeat to a real (SQLite) database."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT, in_process_api

BEAT = (
    "import os, socket; from worker.heartbeat import beat; "
    "assert os.getpid() == 1, os.getpid(); "
    "beat('archbench0@' + socket.gethostname(), 1, [])"
)


def test_two_workers_with_one_hostname_and_one_pid_are_two_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare runs each worker in a PID namespace of its own"
    with in_process_api("sqlite", tmp_path, monkeypatch) as client:
        env = {**os.environ, "ARCHBENCH_DATABASE_URL": f"sqlite:///{tmp_path / 'archbench.db'}"}
        for _ in range(2):
            proc = subprocess.run(
                [unshare, "--pid", "--fork", sys.executable, "-c", BEAT],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
        text = client.get("/metrics").text
    series = re.findall(
        r'^archbench_worker_heartbeat_timestamp_seconds\{pid="(\d+)",worker="([^"]+)"\}',
        text,
        re.M,
    )
    assert len(series) == 2, text
    assert {pid for pid, _ in series} == {"1"}
    names = {name for _, name in series}
    assert len(names) == 2
    host = socket.gethostname()
    for name in names:  # the hostname stays readable; the PID namespace tells them apart
        assert re.fullmatch(rf"archbench0@{re.escape(host)}/pidns-\d+", name), name


def test_a_worker_in_the_machines_own_pid_namespace_keeps_its_plain_hostname() -> None:
    from worker.heartbeat import INITIAL_PID_NAMESPACE, host_identity, qualified_name

    host = socket.gethostname()
    if os.readlink("/proc/self/ns/pid") == f"pid:[{INITIAL_PID_NAMESPACE}]":
        assert host_identity() == host
        assert qualified_name(f"w@{host}") == f"w@{host}"
    else:  # this test itself runs in a container
        assert host_identity().startswith(f"{host}/pidns-")
    assert qualified_name("w@elsewhere") == "w@elsewhere"
