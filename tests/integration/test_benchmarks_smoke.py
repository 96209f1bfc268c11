"""Each benchmark runs at a tiny size, so none of them can rot. Their figures are not checked."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.services import ROOT

pytestmark = [pytest.mark.services, pytest.mark.worker]


def bench(*args: str, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT / "bench", capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_overhead_smoke(pg_url: str, redis_url: str) -> None:
    out = bench(
        "overhead.py",
        "--mode",
        "both",
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--seeds",
        "1",
        "--samples",
        "200",
    )
    assert "embedded: plain Keras" in out
    assert "distributed: plain Keras" in out
    assert "ratio b/a" in out


def test_many_small_smoke(pg_url: str, redis_url: str) -> None:
    out = bench("many_small.py", "--trials", "6", "--rounds", "1", "--samples", "200")
    assert "ms per trial" in out


def test_api_load_smoke(pg_url: str, redis_url: str) -> None:
    out = bench("api_load.py", "--seconds", "2", "--clients", "4", "--client", "python")
    assert "requests/s" in out
    assert "errors: 0" in out


def test_metrics_export_smoke(pg_url: str, redis_url: str) -> None:
    out = bench("metrics_export.py", "--sizes", "2,4", "--epochs", "5", "--repeat", "1")
    assert "trials" in out
    assert "json ms" in out


def test_streams_smoke(pg_url: str, redis_url: str) -> None:
    small = ["--streams", "6", "--comparisons", "2", "--clients", "4", "--seconds", "2"]
    out = bench("streams.py", *small, "--poller", "python")
    assert "6 of 6 open" in out
    assert "5xx: 0" in out
    if shutil.which("wrk"):  # the default poller where installed (apt-get install wrk)
        out = bench("streams.py", *small, "--poller", "wrk")
        assert "polling (wrk) with 6 streams open" in out
        assert "errors: none" in out


def test_upload_memory_smoke(pg_url: str, redis_url: str) -> None:
    out = bench("upload_memory.py", "--rows", "20000", "--cols", "4")
    assert "HTTP 201" in out
    assert "above idle" in out


def test_round_lock_smoke(pg_url: str) -> None:
    out = bench(
        "round_lock.py", "--variants", "2", "--seeds", "2", "--examples", "50", "--repeat", "1"
    )
    assert "sqlite: finalize_comparison" in out
    assert "postgres: row lock held" in out


def test_report_at_limits_smoke(pg_url: str) -> None:
    out = bench(
        "report_at_limits.py",
        "--variants",
        "2",
        "--seeds",
        "3",
        "--examples",
        "500",
        "--gets",
        "5",
    )
    assert "ratio vs target:" in out
    assert "ratio vs baseline:" in out
