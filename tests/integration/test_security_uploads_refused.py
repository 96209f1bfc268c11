"""Uploads are refused before they cost the api: real api process, Postgres, auth on.

An archive of hundreds of thousands of empty members is refused from its end record (the api
used to build an object per member and answer a `dropped` entry for each: 1.9 M members took
1.7 GB); an upload beyond ARCHBENCH_MAX_CONCURRENT_UPLOADS, or not sent as multipart, is
refused from its headers, before its body is sent; an upload cut off mid-body gives its slot
back and leaves no temporary file behind.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.helpers import assert_problem
from tests.support.secured import SecuredApi, secured_api
from tests.support.zips import empty_members

pytestmark = [pytest.mark.services]

MEMBERS = 300_000  # 27.6 MB of zip
MAX_GROWTH_MB = 64
DECLARED = 20_000_000  # the Content-Length the raw uploads below announce


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredApi]:
    data = tmp_path_factory.mktemp("refused")
    (data / "tmp").mkdir()
    with secured_api(
        data,
        ("a",),
        ARCHBENCH_MAX_UPLOAD_BYTES="64000000",
        ARCHBENCH_MAX_CONCURRENT_UPLOADS="1",
        TMPDIR=str(data / "tmp"),
    ) as svc:
        yield svc


def _api_pid(api: SecuredApi) -> int:
    for line in api.log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line) if line.startswith("{") else {}
        if "Started server process" in str(entry.get("msg", "")):
            return int(entry["pid"])
    raise AssertionError("no api pid in the log")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def _small_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x_train=np.ones((8, 3), np.float32), y_train=np.arange(8) % 2)
    return buf.getvalue()


def test_an_archive_of_many_members_is_refused_in_bounded_memory(api: SecuredApi) -> None:
    content = empty_members(MEMBERS)
    pid = _api_pid(api)
    with api.client("a") as a:  # warm the route (imports, first allocations)
        assert a.post("/v1/datasets", files={"file": ("w.npz", _small_npz())}).status_code == 201
        idle = _status_mb(pid, "VmRSS")
        resp = a.post("/v1/datasets", files={"file": ("many.npz", content)}, timeout=120)
    peak = _status_mb(pid, "VmHWM")
    print(f"api peak RSS {peak:.0f} MB, idle {idle:.0f} MB before the upload")
    body = assert_problem(resp, 422)
    (error,) = body["errors"]
    assert error["loc"] == ["body", "file"]
    assert f"{MEMBERS:,} members" in error["msg"]
    assert len(resp.content) < 2000
    assert peak - idle < MAX_GROWTH_MB, (peak, idle)


def _raw_upload(api: SecuredApi, content_type: str, body: bytes = b"") -> socket.socket:
    """Open a connection and send an upload's headers (announcing DECLARED bytes) and ``body``."""
    host, port = api.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {api.keys['a']}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {DECLARED}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    return conn


def _answer(conn: socket.socket, within: float) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The status, headers and JSON body the api answers within ``within`` seconds."""
    conn.settimeout(within)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise AssertionError(f"no answer within {within} s (got {data[:200]!r})") from None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(rest[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _leftovers(api: SecuredApi, pid: int) -> list[str]:
    data = Path(api.env["ARCHBENCH_DATA_DIR"])
    files = [p.name for p in (data / "uploads").glob(".*")] + [
        p.name for p in (data / "tmp").iterdir()
    ]
    places = (str(data / "uploads"), str(data / "tmp"), "(deleted)")
    spooled = [target for target in _open_files(pid) if any(place in target for place in places)]
    return files + spooled


def _open_files(pid: int) -> list[str]:
    """What the process's descriptors point at; one closed between the listing and its read
    (the api's own sockets and files come and go) is skipped."""
    out = []
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(str(link.readlink()))
        except FileNotFoundError:
            continue
    return out


def test_uploads_are_refused_before_their_body_and_leave_nothing_behind(
    api: SecuredApi,
) -> None:
    pid = _api_pid(api)
    boundary = "b0undary"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + bytes(2_000_000)
    holding = _raw_upload(api, f"multipart/form-data; boundary={boundary}", start)
    try:
        time.sleep(1.0)  # the api has the headers and 2 MB of the body; it holds the one slot
        t0 = time.monotonic()
        second = _raw_upload(api, f"multipart/form-data; boundary={boundary}")
        with second:
            status, headers, problem = _answer(second, within=5)
        assert status == 429, problem
        assert time.monotonic() - t0 < 5
        assert "ARCHBENCH_MAX_CONCURRENT_UPLOADS" in problem["detail"]
        assert int(headers["retry-after"]) > 0
        assert headers["content-type"].startswith("application/problem+json")
        with _raw_upload(api, "application/json") as not_multipart:
            status, _, problem = _answer(not_multipart, within=5)
        assert status == 422, problem
        assert problem["errors"][0]["loc"] == ["body", "file"]
    finally:
        holding.close()  # cut off mid-body
    with api.client("a") as a:  # the cut-off upload gave its slot back
        deadline = time.monotonic() + 10
        while True:
            resp = a.post("/v1/datasets", files={"file": ("s.npz", _small_npz())})
            if resp.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert resp.status_code == 201, resp.text
    assert _leftovers(api, pid) == []
