"""Uploads are checked in bounded memory and stored re-written.

A small .npz can declare a large array: 880 MB of float32 zeros compress to under 1 MB.
The api used to load each array whole to check it (its peak memory grew by the array's size);
now it streams every member in chunks, writes the checked arrays (and nothing else) to a new
file, and only that file is stored. Real api process, Postgres, auth on.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.helpers import assert_problem
from tests.support.secured import SecuredApi, secured_api

pytestmark = pytest.mark.services

ROWS, COLS = 2_500_000, 22  # 220 MB of float32 uncompressed, about 220 KB as sent
MAX_GROWTH_MB = 100


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    with secured_api(
        tmp_path_factory.mktemp("bounded"),
        ("a",),
        ARCHBENCH_MAX_UPLOAD_BYTES="5000000",
        ARCHBENCH_MAX_DATASET_BYTES="1000000000",
        ARCHBENCH_MAX_CONCURRENT_UPLOADS="1",
    ) as svc:
        yield svc


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def zeros_npz(rows: int, cols: int) -> bytes:
    """An .npz of x_train = zeros((rows, cols), float32), written a chunk at a time."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)}
            )
            chunk = bytes(1 << 22)
            left = rows * cols * 4
            while left:
                fh.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        zf.writestr("y_train.npy", _npy((np.arange(rows) % 2).astype(np.uint8)))
    return buf.getvalue()


def _api_pid(api: SecuredApi) -> int:
    for line in api.log.read_text().splitlines():
        with_pid: dict[str, Any] = json.loads(line) if line.startswith("{") else {}
        if "Started server process" in str(with_pid.get("msg", "")):
            return int(with_pid["pid"])
    raise AssertionError("no api pid in the log")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _current_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_large_array_is_checked_in_bounded_memory_and_uploads_are_limited(
    api: SecuredApi,
) -> None:
    content = zeros_npz(ROWS, COLS)
    assert len(content) < 1_000_000
    pid = _api_pid(api)
    with api.client("a") as a:  # warm the route (imports, first allocations)
        small = zeros_npz(100, COLS)
        assert a.post("/v1/datasets", files={"file": ("w.npz", small)}).status_code == 201
    before_peak = _peak_rss_mb(pid)
    idle = _current_rss_mb(pid)
    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        with api.client("a") as a:
            # As a client should: on 429 (a small upload below held the slot) retry.
            for _ in range(100):
                resp = a.post("/v1/datasets", files={"file": ("z.npz", content)}, timeout=120)
                result["big"] = resp
                if resp.status_code != 429:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=upload)
    thread.start()
    refused: list[httpx.Response] = []
    with api.client("a") as a:
        while thread.is_alive() and not refused:
            resp = a.post("/v1/datasets", files={"file": ("s.npz", small)})
            if resp.status_code == 429:
                refused.append(resp)
            time.sleep(0.05)
    thread.join()
    big = result["big"]
    assert big.status_code == 201, big.text
    assert big.json()["samples"] == ROWS
    growth = _peak_rss_mb(pid) - max(idle, 0)
    print(f"api peak RSS {_peak_rss_mb(pid):.0f} MB (was {before_peak:.0f}), idle {idle:.0f} MB")
    assert growth < MAX_GROWTH_MB, (growth, _peak_rss_mb(pid), idle)
    # A second upload while one was being checked: 429 (ARCHBENCH_MAX_CONCURRENT_UPLOADS=1).
    assert refused, "no upload was refused while another was being checked"
    body = assert_problem(refused[0], 429)
    assert "ARCHBENCH_MAX_CONCURRENT_UPLOADS" in body["detail"]
    assert int(refused[0].headers["retry-after"]) > 0


class Canary:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pickled payload ran",))


def test_only_the_checked_arrays_are_stored(api: SecuredApi) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 6)).astype(np.float32)
    y = np.arange(40) % 2
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_train.npy", _npy(x))
        zf.writestr("y_train.npy", _npy(y))
        zf.writestr("extra.npy", _npy(np.array([Canary(), 1], dtype=object)))
        zf.writestr("../../../tmp/x.npy", _npy(np.zeros(3)))
        zf.writestr("notes.txt", b"hello")
    with api.client("a") as a:
        resp = a.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())})
    assert resp.status_code == 201, resp.text
    dropped = {d["member"]: d["reason"] for d in resp.json()["dropped"]}
    assert set(dropped) == {"extra.npy", "../../../tmp/x.npy", "notes.txt"}
    assert "path" in dropped["../../../tmp/x.npy"]
    stored = Path(api.env["ARCHBENCH_DATA_DIR"]) / "uploads" / f"{resp.json()['content_hash']}.npz"
    assert stored.is_file()
    assert stored.read_bytes() != buf.getvalue()
    with zipfile.ZipFile(stored) as zf:
        assert sorted(zf.namelist()) == ["x_train.npy", "y_train.npy"]
    with np.load(stored, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["x_train"], x)
        np.testing.assert_array_equal(npz["y_train"], y)


def test_two_members_for_one_array_are_refused(api: SecuredApi) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_train", _npy(np.zeros((10, 3))))
        zf.writestr("x_train.npy", _npy(np.array([Canary()] * 10, dtype=object)))
        zf.writestr("y_train.npy", _npy(np.arange(10) % 2))
    with api.client("a") as a:
        body = assert_problem(
            a.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}), 422
        )
    assert body["errors"][0]["loc"] == ["body", "file", "x_train"]
    assert "twice" in body["errors"][0]["msg"]


def test_a_crafted_header_is_not_echoed(api: SecuredApi) -> None:
    header = b"{'descr': f(), 'fortran_order': False, 'shape': (2, 2), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(32)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x_train.npy", member)
        zf.writestr("y_train.npy", _npy(np.arange(2) % 2))
    with api.client("a") as a:
        body = assert_problem(
            a.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}), 422
        )
    assert body["errors"][0]["loc"] == ["body", "file", "x_train"]
    assert "header cannot be parsed" in body["errors"][0]["msg"]
    assert "ast." not in json.dumps(body)
    assert " object at 0x" not in json.dumps(body)
