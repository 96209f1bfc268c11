"""How the client commands print what went wrong: a refused request's errors once each, and an
unreachable service with how to start one, never "(0)"."""

from __future__ import annotations

import socket

import pytest

from archbench.errors import InvalidInput
from cli.main import main
from cli.remote import EXIT_BAD_INPUT, EXIT_FAILED, _report_problem


def test_a_422_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    errors = [
        {"loc": ["body", "seeds"], "msg": "seeds must be a list"},
        {"loc": ["body", "variants", 0, "layers", 1, "units"], "msg": "must be at least 1"},
    ]
    problem = {
        "title": "Invalid input",
        "status": 422,
        "detail": "2 error(s); first at body.seeds: seeds must be a list",
        "errors": errors,
    }
    assert _report_problem(InvalidInput(problem, 422)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("seeds must be a list") == 1
    assert err.splitlines() == [
        "archbench: Invalid input (422): 2 error(s)",
        "archbench:   at body.seeds: seeds must be a list",
        "archbench:   at body.variants.0.layers.1.units: must be at least 1",
    ]


def test_an_unreachable_service_says_how_to_start_one(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert main(["ls", "--url", f"http://127.0.0.1:{port}"]) == EXIT_FAILED
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"archbench: cannot reach archbench at http://127.0.0.1:{port} (")
    assert "(0)" not in line
    assert "`archbench up`" in line
    assert "ARCHBENCH_URL" in line
