"""Uploads with many members are refused from the archive's end record, before its directory
is read, and the ``dropped`` list stays short."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.data.uploads import MAX_MEMBERS, inspect_npz
from core.errors import InvalidInput
from tests.support.zips import empty_members


def _refusal(path: Path) -> str:
    with pytest.raises(InvalidInput) as refused:
        inspect_npz(path, max_bytes=10**9)
    (error,) = refused.value.errors
    assert error["loc"] == ["body", "file"]
    return error["msg"]


def test_an_archive_of_many_members_is_refused_by_its_count(tmp_path: Path) -> None:
    path = tmp_path / "many.npz"
    path.write_bytes(empty_members(200_000))
    msg = _refusal(path)
    assert "200,000 members" in msg
    assert f"more than {MAX_MEMBERS}" in msg


def test_an_end_record_that_understates_the_members_does_not_help(tmp_path: Path) -> None:
    large = tmp_path / "large.npz"
    large.write_bytes(empty_members(20_000, declare=2))  # a 1 MB directory for "2" members
    assert "directory takes" in _refusal(large)
    small = tmp_path / "small.npz"
    small.write_bytes(empty_members(MAX_MEMBERS + 1, declare=2))  # within the directory bound
    assert f"{MAX_MEMBERS + 1} members" in _refusal(small)


def test_extra_members_up_to_the_bound_are_listed_as_dropped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, array in (("x_train", np.ones((6, 3))), ("y_train", np.arange(6) % 2)):
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, array)
        for i in range(MAX_MEMBERS - 2):
            zf.writestr(f"extra{i}.txt", b"")
    path = tmp_path / "ok.npz"
    path.write_bytes(buf.getvalue())
    facts, dropped = inspect_npz(path, max_bytes=10**9)
    assert facts.samples == 6
    assert len(dropped) == MAX_MEMBERS - 2
