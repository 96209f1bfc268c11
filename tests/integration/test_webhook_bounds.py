"""A receiver cannot exhaust a worker nor lock the database: real receivers on loopback.

A gzip bomb (a 500 whose small body inflates to hundreds of MB) costs the delivering process
kilobytes, measured as the growth of its peak resident memory; a receiver that trickles its
answer a byte at a time is cut off at the delivery's time limit, and while it trickles no
transaction is open: the comparison's row can be locked by others (Postgres) and the database
written (SQLite).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.config import Settings
from core.trials.posting import ANSWER_BYTES, SHOWN_BYTES
from tests.support.services import fresh_database, in_process_database
from tests.support.webhook_rows import deliveries as attempts
from tests.support.webhook_rows import finished

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
INFLATED_MB = 256  # the bomb's inflated size (the probe used 1 GB; 256 MB shows the same)
TRICKLE_BYTES = 80  # one every TRICKLE_GAP seconds: 8 s in all, each read well in its timeout
TRICKLE_GAP = 0.1
LIMIT = 1.5  # ARCHBENCH_WEBHOOK_DELIVERY_LIMIT_SECONDS in the trickle test


def _bomb() -> bytes:
    """gzip of INFLATED_MB MB of "x" (about a thousandth of that), built a MB at a time."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"x" * (1 << 20)
    parts = [packer.compress(block) for _ in range(INFLATED_MB)]
    return b"".join(parts) + packer.flush()


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, dict[str, Any]]]:
    """``/bomb`` answers 500 with the gzip bomb; ``/trickle`` answers 500 a byte at a time."""
    seen: dict[str, Any] = {"requests": [], "trickling": threading.Event(), "sent": 0}
    bomb = _bomb()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen["requests"].append(self.path)
            self.send_response(500)
            if self.path == "/bomb":
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(bomb)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(bomb)
                return
            self.send_header("Content-Length", str(TRICKLE_BYTES))
            self.end_headers()
            seen["trickling"].set()
            with contextlib.suppress(OSError):
                for _ in range(TRICKLE_BYTES):
                    self.wfile.write(b"x")
                    seen["sent"] += 1
                    time.sleep(TRICKLE_GAP)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


MEASURE = """
import json, resource, sys
from core.config import get_settings
from core.report.load import load_report
from core.store.db import session_scope
from core.store.tables import Comparison
from core.trials.webhooks import deliver_due

with session_scope() as s:  # warm up: the database connection and the report's imports
    try:
        load_report(s, s.get(Comparison, sys.argv[1]))
    except Exception:
        pass
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
done = deliver_due(get_settings())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "done": done}))
"""


def test_a_gzip_bomb_answer_costs_the_worker_kilobytes(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        fresh_database("archbench_hookbomb") as url,
        in_process_database(url, monkeypatch),
        receiver() as (base, seen),
    ):
        cid = finished(f"{base}/bomb")
        env = {
            **os.environ,
            "ARCHBENCH_DATABASE_URL": url,
            "ARCHBENCH_WEBHOOK_SECRET": "s",
            "ARCHBENCH_WEBHOOK_ALLOW_PRIVATE": "true",
        }
        run = subprocess.run(
            [sys.executable, "-c", MEASURE, cid],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        (row,) = attempts(cid)
    assert seen["requests"] == ["/bomb"]
    assert measured["done"] == [{"comparison_id": cid, "attempt": 1, "delivered": False}]
    grew_mb = (measured["after_kb"] - measured["before_kb"]) / 1024
    print(f"peak RSS {measured['before_kb'] / 1024:.0f} MB -> {measured['after_kb'] / 1024:.0f} MB")
    assert grew_mb < 32, f"the delivery raised the peak memory by {grew_mb:.0f} MB"
    assert row.status_code == 500
    assert not row.delivered
    assert row.next_attempt_at is not None  # a 500 is retried
    assert row.error is not None
    # The start of the answer, inflated no further than is shown.
    assert row.error == "HTTP 500: " + "x" * SHOWN_BYTES, row.error
    # What the process logs is the same bounded text (no more than SHOWN_BYTES of answer).
    logged = [line for line in run.stderr.splitlines() if "webhook" in line]
    assert all(len(line) < SHOWN_BYTES + 500 for line in logged), logged
    assert ANSWER_BYTES <= 64 * 1024


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_a_trickling_receiver_is_cut_off_and_holds_no_lock(
    database: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.trials.webhooks import deliver_due

    sqlite_path = tmp_path / "embedded.db"
    databases = (
        fresh_database("archbench_hooktrickle")
        if database == "postgres"
        else contextlib.nullcontext(f"sqlite:///{sqlite_path}")
    )
    with (
        databases as url,
        in_process_database(url, monkeypatch),
        receiver() as (base, seen),
    ):
        cid = finished(f"{base}/trickle")
        settings = Settings(
            database_url=url,
            webhook_secret="s",
            webhook_allow_private=True,
            webhook_delivery_limit_seconds=LIMIT,
        )
        result: dict[str, Any] = {}

        def deliver() -> None:
            t0 = time.monotonic()
            result["done"] = deliver_due(settings)
            result["seconds"] = time.monotonic() - t0

        sender = threading.Thread(target=deliver)
        sender.start()
        assert seen["trickling"].wait(10), "the receiver was never called"
        time.sleep(0.3)  # well inside the trickle: the delivery is waiting on the receiver
        if database == "postgres":
            with psycopg.connect(url, autocommit=True) as other:
                # Another worker (or the api) can take the comparison's row right now ...
                with other.transaction():
                    locked = other.execute(
                        "SELECT id FROM comparisons WHERE id = %s FOR UPDATE NOWAIT", (cid,)
                    ).fetchall()
                assert locked == [(cid,)]
                # ... and no session of this process sits in an open transaction.
                idle = other.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%%'"
                ).fetchone()
                assert idle == (0,)
        else:
            other_db = sqlite3.connect(sqlite_path, timeout=0.5)
            try:
                other_db.execute("UPDATE comparisons SET name = 'renamed' WHERE id = ?", (cid,))
                other_db.commit()  # "database is locked" if the delivery held a write lock
            finally:
                other_db.close()
        sender.join(30)
        assert not sender.is_alive()
        (row,) = attempts(cid)
    assert result["done"] == [{"comparison_id": cid, "attempt": 1, "delivered": False}]
    # The whole delivery ended at its limit, long before the trickle would have.
    assert result["seconds"] < LIMIT + 1.0, result
    assert seen["sent"] < TRICKLE_BYTES
    assert not row.delivered
    assert row.status_code is None
    assert row.error is not None
    assert row.error.startswith("ReadTimeout: the delivery took longer than its limit of 1.5 s")
    assert row.next_attempt_at is not None  # recorded after, and retried later
