"""``archbench up`` on a port something already serves: one line, and nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.main import main


def test_up_on_a_served_port_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = main(["up", "--port", str(port), "--data-dir", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "archbench is up" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"cannot serve on 127.0.0.1:{port}: address already in use" in lines[0]
    assert "--port" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was made or started
