"""Log formatting, the dashboard's files, and /metrics never hanging on a dead broker."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

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
