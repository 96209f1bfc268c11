"""The api's peak memory while it checks an upload whose arrays are far larger than the file.

The file: ``x_train`` of shape (10,000,000, 22) float32 zeros, 880 MB uncompressed,
865 KB as an .npz. One api process on Postgres; its peak RSS (``VmHWM``) is read before and
after the upload. The api used to load each array whole (peak +1 GB); the target is under
100 MB above idle.

Usage: ``python bench/upload_memory.py [--rows 10000000] [--cols 22]``. Loopback only.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
from _harness import api_on_postgres

TARGET_MB = 100.0


def zeros_npz(rows: int, cols: int) -> bytes:
    """x_train = zeros((rows, cols), float32) and y_train = 0, 1, 0, ... written in chunks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)}
            )
            chunk = bytes(1 << 22)
            left = rows * cols * 4
            while left:
                fh.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
        y = io.BytesIO()
        np.save(y, (np.arange(rows) % 2).astype(np.uint8))
        zf.writestr("y_train.npy", y.getvalue())
    return buf.getvalue()


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--cols", type=int, default=22)
    args = p.parse_args(argv)
    content = zeros_npz(args.rows, args.cols)
    raw = args.rows * args.cols * 4
    settings = {"ARCHBENCH_MAX_UPLOAD_BYTES": "50000000", "ARCHBENCH_ACCESS_LOG": "false"}
    with api_on_postgres("upload", workers=1, **settings) as api:
        pid = api.proc.pid
        with httpx.Client(base_url=api.url, timeout=600) as client:
            small = zeros_npz(100, args.cols)
            client.post("/v1/datasets", files={"file": ("w.npz", small)}).raise_for_status()
            idle = _status_mb(pid, "VmRSS")
            peak_before = _status_mb(pid, "VmHWM")
            t0 = time.perf_counter()
            resp = client.post("/v1/datasets", files={"file": ("z.npz", content)})
            took = time.perf_counter() - t0
        peak = _status_mb(pid, "VmHWM")
    growth = peak - idle
    print(
        f"upload of {len(content):,} bytes ({raw / 1e6:,.0f} MB uncompressed): HTTP "
        f"{resp.status_code} in {took:.1f} s; api RSS idle {idle:.0f} MB, peak before "
        f"{peak_before:.0f} MB, peak after {peak:.0f} MB: +{growth:.0f} MB above idle "
        f"({growth / TARGET_MB:.2f}x the {TARGET_MB:.0f} MB target)"
    )
    return 0 if resp.status_code == 201 else 1


if __name__ == "__main__":
    sys.exit(main())
