"""Log formatting, the dashboard's files, and /metrics never hanging on a dead broker."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from api.app import create_app
from api.metrics import queue_depth
from api.routes.dashboard import STATIC_DIR
from core.config import Settings
from core.logging import HumanFormatter, JsonFormatter, log_context


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("archbench.test", logging.INFO, __file__, 1, msg, None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_json_formatter_carries_context_and_extra() -> None:
    fmt = JsonFormatter("worker")
    with log_context(comparison_id="c1", trial_id="t1"):
        line = fmt.format(_record("hello\nworld", epoch=3))
    assert "\n" not in line
    body = json.loads(line)
    assert body["msg"] == "hello\nworld"
    assert body["level"] == "INFO"
    assert body["logger"] == "archbench.test"
    assert body["component"] == "worker"
    assert body["epoch"] == 3
    assert (body["comparison_id"], body["trial_id"]) == ("c1", "t1")
    assert "trial_id" not in json.loads(fmt.format(_record("outside")))
    explicit = json.loads(fmt.format(_record("x", trial_id="t2")))
    assert explicit["trial_id"] == "t2"


def test_json_formatter_exception_is_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record("failed")
        record.exc_info = sys.exc_info()
    body = json.loads(JsonFormatter().format(record))
    assert body["exc_type"] == "ValueError"
    assert "boom" in body["exc"]


def test_human_formatter_is_readable() -> None:
    with log_context(trial_id="t9"):
        line = HumanFormatter().format(_record("training"))
    assert "training" in line
    assert "trial_id=t9" in line
    assert not line.startswith("{")


def test_dashboard_assets_exist_and_use_no_cdn() -> None:
    names = {p.name for p in STATIC_DIR.iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
    for p in STATIC_DIR.iterdir():
        text = Path(p).read_text()
        assert not re.search(r"https?://", text), p.name


def test_queue_depth_gives_up_fast_on_an_unreachable_broker(tmp_path: Path) -> None:
    # 10.255.255.1 is not routable: a connect there hangs until the timeout.
    settings = Settings(data_dir=tmp_path, broker_url="redis://10.255.255.1:6379/0")
    start = time.monotonic()
    assert queue_depth(settings) is None
    assert time.monotonic() - start < 5


def _asgi_get(app: FastAPI, *paths: str) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://archbench") as c:
            return [await c.get(p) for p in paths]

    return asyncio.run(go())


def test_docs_page_and_every_asset_it_names_are_served_locally(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), check_migrations=False)
    page, oauth, redoc = _asgi_get(app, "/docs", "/docs/oauth2-redirect", "/redoc")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert not re.search(r"https?://", page.text), page.text
    assert oauth.status_code == 200
    assert not re.search(r"(src|href)=[\"']?https?://", oauth.text)
    assert redoc.status_code == 404  # ReDoc has no local copy, so it is off
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(r.endswith(".js") for r in refs)
    assert any(r.endswith(".css") for r in refs)
    for ref, resp in zip(refs, _asgi_get(app, *refs), strict=True):
        assert resp.status_code == 200, ref
        assert len(resp.content) > 500, ref
    assert _asgi_get(app, "/static/swagger-ui/..%2Fapp.js")[0].status_code == 404


def test_every_request_logs_one_json_line_with_route_and_comparison(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), check_migrations=False)
    quiet = create_app(Settings(data_dir=tmp_path, access_log=False), check_migrations=False)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("archbench.api.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    cid = "0b5e3c1e-6f2a-4a57-9f0e-2d6c1b8a9e11"
    try:
        _asgi_get(app, "/docs", f"/v1/comparisons/{cid}/no-such-thing")
        _asgi_get(quiet, "/docs")  # ARCHBENCH_ACCESS_LOG=false: no line
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    docs, missing = (json.loads(line) for line in lines)
    assert (docs["method"], docs["route"], docs["status"]) == ("GET", "/docs", 200)
    assert isinstance(docs["duration_ms"], float)
    assert "comparison_id" not in docs
    assert (missing["route"], missing["status"]) == ("unmatched", 404)
    assert missing["comparison_id"] == cid
    assert missing["component"] == "api"
