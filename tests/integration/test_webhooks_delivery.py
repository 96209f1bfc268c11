"""Webhooks: a real receiver on loopback checks the signature; failures are retried with
backoff and every attempt is recorded and listed at /deliveries."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from archbench import Client, InvalidInput
from archbench.webhooks import verify_signature
from core.config import Settings
from core.trials.webhooks import backoff, sign
from tests.support.helpers import small_mlp, tiny_spec
from tests.support.services import Service, free_port, start, stop, wait_http

pytestmark = [pytest.mark.services, pytest.mark.worker]

SECRET = "test-webhook-secret"
DISPATCH = (
    "import time\n"
    "from core.config import get_settings\n"
    "from core.trials.webhooks import deliver_due\n"
    "while True:\n"
    "    deliver_due(get_settings())\n"
    "    time.sleep(0.2)\n"
)


class Receiver:
    """An HTTP receiver: ``/flaky`` answers 500 the first ``fail`` times, others 204."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    n = sum(c["path"] == self.path for c in outer.calls)
                code = 500 if self.path == "/flaky" and n <= outer.fail else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.server.shutdown()


def test_signature_and_backoff_helpers() -> None:
    body = b'{"a":1}'
    ts = str(int(time.time()))
    sig = sign(SECRET, ts, body)
    assert verify_signature(SECRET, body, ts, sig)
    assert not verify_signature("other", body, ts, sig)
    assert not verify_signature(SECRET, body + b" ", ts, sig)
    assert not verify_signature(
        SECRET, body, str(int(ts) - 3600), sign(SECRET, str(int(ts) - 3600), body)
    )
    s = Settings(webhook_backoff_seconds=2, webhook_backoff_max_seconds=10)
    assert [backoff(s, n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def test_callback_is_signed_retried_and_recorded(
    distributed: Service, receiver: Receiver, tmp_path: Path
) -> None:
    # The shared api has no secret, so it refuses callback_url with a located error.
    with Client(distributed.url) as plain, pytest.raises(InvalidInput) as refused:
        plain.submit(tiny_spec("hook-off", seeds=[0], epochs=1), callback_url=receiver.url)
    assert ["body", "callback_url"] in [e["loc"] for e in refused.value.errors]

    env = {
        **distributed.env,
        "ARCHBENCH_WEBHOOK_SECRET": SECRET,
        "ARCHBENCH_WEBHOOK_BACKOFF_SECONDS": "0.3",
        "ARCHBENCH_PUBLIC_URL": "https://archbench.example",
    }
    port = free_port()
    api = start(
        [sys.executable, "-m", "cli.main", "api", "--port", str(port)], env, tmp_path / "api.log"
    )
    dispatcher = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url, api, tmp_path / "api.log")
        with Client(url) as ab:
            with pytest.raises(InvalidInput) as bad:
                ab.submit(tiny_spec("hook-bad"), callback_url="ftp://example.com/x")
            assert bad.value.errors[0]["loc"] == ["body", "callback_url"]

            spec = tiny_spec("hook", seeds=[0], epochs=1, samples=200, variants=[small_mlp()])
            done = ab.submit(spec, callback_url=f"{receiver.url}/flaky")
            cancelled = ab.submit(
                tiny_spec("hook-cancel", seeds=[0, 1, 2], epochs=3),
                callback_url=f"{receiver.url}/ok",
            )
            ab.cancel(cancelled["id"])
            assert ab.wait(done["id"], timeout=240)["status"] == "succeeded"
            assert ab.wait(cancelled["id"], timeout=120)["status"] == "cancelled"

            dispatcher = start([sys.executable, "-c", DISPATCH], env, tmp_path / "dispatch.log")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(d["delivered"] for d in ab.deliveries(done["id"])) and ab.deliveries(
                    cancelled["id"]
                ):
                    break
                time.sleep(0.3)
            time.sleep(1.0)  # nothing more may be sent once delivered
            attempts = ab.deliveries(done["id"])
            other = ab.deliveries(cancelled["id"])
    finally:
        if dispatcher is not None:
            stop(dispatcher)
        stop(api)
    log = (tmp_path / "dispatch.log").read_text()
    assert [a["attempt"] for a in attempts] == [1, 2, 3], (attempts, log[-3000:])
    assert [a["status_code"] for a in attempts] == [500, 500, 204]
    assert [a["delivered"] for a in attempts] == [False, False, True]
    assert attempts[0]["next_attempt_at"]
    assert attempts[1]["next_attempt_at"]
    assert attempts[2]["next_attempt_at"] is None
    assert "HTTP 500" in (attempts[0]["error"] or "")
    assert len(other) == 1
    assert other[0]["delivered"]

    calls = receiver.to("/flaky")
    assert len(calls) == 3
    bodies = {c["body"] for c in calls}
    assert len(bodies) == 1  # the same body on every attempt
    for call in calls:
        h = {k.lower(): v for k, v in call["headers"].items()}
        assert verify_signature(
            SECRET, call["body"], h["x-archbench-timestamp"], h["x-archbench-signature"]
        )
        assert h["x-archbench-event"] == "comparison_finished"
    assert [
        {k.lower(): v for k, v in c["headers"].items()}["x-archbench-delivery"] for c in calls
    ] == [a["id"] for a in attempts]
    payload = json.loads(calls[0]["body"])
    assert payload["comparison_id"] == done["id"]
    assert payload["status"] == "succeeded"
    assert payload["link"] == f"https://archbench.example/v1/comparisons/{done['id']}"
    assert isinstance(payload["verdict"], str)
    assert payload["verdict"]
    cancelled_payload = json.loads(receiver.to("/ok")[0]["body"])
    assert cancelled_payload["status"] == "cancelled"
