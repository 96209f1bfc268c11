"""Webhook delivery with private destinations off: refused inside, pinned to the checked address.

Runs ``deliver_due`` in process against a fresh Postgres database and a real HTTP receiver on
loopback. With ``ARCHBENCH_WEBHOOK_ALLOW_PRIVATE=false`` a callback to 127.0.0.1 is recorded
as refused and never retried; a callback to a name is POSTed to the address that name was
checked to resolve to, with the name as ``Host`` (the test lets 127.0.0.1 count as public
and resolves ``hooks.test`` to it, the only way to reach a receiver from here).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.config import Settings
from core.trials import destinations
from tests.support.services import fresh_database, in_process_database
from tests.support.webhook_rows import deliveries, finished

pytestmark = [pytest.mark.services]


@contextlib.contextmanager
def receiver() -> Iterator[tuple[int, list[dict[str, str]]]]:
    calls: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"path": self.path, "host": self.headers["Host"]})
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], calls
    finally:
        server.shutdown()


def test_refused_inside_and_pinned_outside(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.trials.webhooks import deliver_due

    with (
        fresh_database("archbench_hooks") as url,
        in_process_database(url, monkeypatch),
        receiver() as (
            port,
            calls,
        ),
    ):
        settings = Settings(database_url=url, webhook_secret="s", webhook_allow_private=False)

        inside = finished(f"http://127.0.0.1:{port}/inside")
        deliver_due(settings)
        (row,) = deliveries(inside)
        assert not row.delivered
        assert row.error is not None
        assert row.error.startswith("refused: 127.0.0.1 is not a public address")
        assert row.next_attempt_at is None  # not retried: the answer would be the same
        assert calls == []

        # An IPv6 form of an inside IPv4 address (NAT64 of 127.0.0.1) is judged as that
        # address at delivery too.
        nat64 = finished(f"http://[64:ff9b::7f00:1]:{port}/nat64")
        deliver_due(settings)
        (row,) = deliveries(nat64)
        assert not row.delivered
        assert row.error is not None
        assert row.error.startswith("refused: 64:ff9b::7f00:1 is not a public address"), row.error
        assert calls == []

        real_getaddrinfo = socket.getaddrinfo  # the module core.trials.destinations resolves with

        lookups: list[str] = []

        def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
            if host != "hooks.test":
                return real_getaddrinfo(host, *args, **kwargs)
            lookups.append(host)
            if len(lookups) > 1:  # a second answer (DNS rebinding) must never be asked for
                raise socket.gaierror("hooks.test asked twice: the POST was not pinned")
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        monkeypatch.setattr(destinations, "_blocked", lambda address: False)
        outside = finished(f"http://hooks.test:{port}/outside")
        deliver_due(settings)
        (row,) = deliveries(outside)
        assert row.delivered, row.error
        assert calls == [{"path": "/outside", "host": f"hooks.test:{port}"}]
        assert lookups == ["hooks.test"]  # checked once, then the checked address was used
        assert len(deliveries(inside)) == 1  # the refused one was not tried again
