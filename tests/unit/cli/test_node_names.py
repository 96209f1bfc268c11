"""Celery node names are unique per container, as the heartbeat's identity is.

Under host networking two worker containers share the hostname, and both ran a node called
``archbench@vm``: ``celery inspect ping`` could not tell them apart, so a container's health
check passed when any worker answered. The node name now carries the PID namespace.
"""

from __future__ import annotations

import os
import socket

import pytest

from cli.main import _worker_argv, node_name
from worker.heartbeat import INITIAL_PID_NAMESPACE, host_identity


def test_the_node_name_carries_the_heartbeat_identity() -> None:
    name = node_name("archbench3")
    assert name == f"archbench3@{host_identity().replace('/', '-')}"
    assert "/" not in name
    assert f"--hostname={name}" in _worker_argv(1, "archbench3")


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="Linux's /proc only")
def test_in_a_pid_namespace_of_its_own_the_name_ends_as_the_health_check_greps() -> None:
    inode = os.readlink("/proc/self/ns/pid").rpartition("[")[2].rstrip("]")
    host = socket.gethostname()
    expected = host if inode == INITIAL_PID_NAMESPACE else f"{host}-pidns-{inode}"
    # docker-compose.yml's check greps "@$HOSTNAME-pidns-<readlink /proc/self/ns/pid>", or
    # "@$HOSTNAME" in the initial namespace.
    assert node_name("w").endswith(f"@{expected}")
