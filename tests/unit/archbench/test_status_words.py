"""archbench.status: the client's copy of the state words equals the server's (core.status),
which the client package may not import."""

from __future__ import annotations

from archbench import status as client
from core import status as server


def test_client_words_are_the_servers() -> None:
    assert [(s.name, s.value) for s in client.ComparisonStatus] == [
        (s.name, s.value) for s in server.ComparisonStatus
    ]
    # Two enum classes: compared as the str they both are.
    client_terminal: set[str] = set(client.TERMINAL)
    assert client_terminal == set(server.TERMINAL)


def test_members_equal_the_json_strings() -> None:
    succeeded: str = client.ComparisonStatus.SUCCEEDED  # held as the str it is, as in JSON
    assert succeeded == "succeeded"
    assert "cancelled" in client.TERMINAL
    assert "running" not in client.TERMINAL
