"""Uploaded datasets: check an ``.npz`` without executing anything, store it by content hash.

The file is opened with ``np.load(allow_pickle=False)`` only after its zip directory and each
array's ``.npy`` header were read: the declared uncompressed sizes bound the memory it can take,
and a header whose shape needs more bytes than its member holds (or than the dataset limit) is
refused before numpy allocates anything for it. Every problem is reported with
its location, ``["body", "file", "x_train"]`` and so on. Files live in
``<data dir>/uploads/<sha256>.npz``; rows in ``datasets`` give each tenant its own name for one,
``upload:<id>``, which only that tenant can see or use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib.npyio import NpzFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.datasets import DatasetInfo
from core.db import session_scope
from core.errors import ErrorItem, InvalidInput
from core.tables import Comparison, Dataset
from core.tenancy import owned
from core.timestamps import rfc3339

__all__ = [
    "UPLOAD_PREFIX",
    "DatasetResolver",
    "UploadFacts",
    "dataset_out",
    "inspect_npz",
    "resolver_for",
    "store_upload",
    "upload_info",
    "upload_path_of",
]

UPLOAD_PREFIX = "upload:"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 10_000
CHUNK = 1 << 16  # rows per chunk when scanning for NaN/inf
ZIP_MAGIC = b"PK\x03\x04"  # a zip archive's first local file header (np.savez writes one)
NPY_MAGIC = b"\x93NUMPY"

DatasetResolver = Callable[[str], DatasetInfo | None]


@dataclass(frozen=True)
class UploadFacts:
    """What validation learned about an upload."""

    input_shape: tuple[int, ...]
    num_classes: int
    samples: int


def _loc(*parts: str) -> list[str | int]:
    return ["body", "file", *parts]


def _fail(msg: str, *parts: str) -> InvalidInput:
    return InvalidInput([{"loc": _loc(*parts), "msg": msg}])


def _read_arrays(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _fail("not an .npz file (a zip archive of .npy arrays, as np.savez writes)") from None
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise _fail(
            f"the arrays take {total:,} bytes uncompressed, over the limit of {max_bytes:,} "
            "(ARCHBENCH_MAX_DATASET_BYTES)"
        )
    members = {i.filename.removesuffix(".npy") for i in infos}
    errors: list[ErrorItem] = [
        {"loc": _loc(k), "msg": "missing: the .npz file must hold x_train and y_train"}
        for k in ("x_train", "y_train")
        if k not in members
    ]
    if ("x_test" in members) != ("y_test" in members):
        k = "y_test" if "x_test" in members else "x_test"
        errors.append({"loc": _loc(k), "msg": "missing: x_test and y_test come together"})
    if errors:
        raise InvalidInput(errors)
    with path.open("rb") as fh:
        if fh.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            # np.load would read a file that starts as a .npy (an .npy + zip polyglot) as one
            # array, and anything else as a pickle.
            raise _fail(
                "not an .npz file (a zip archive of .npy arrays, as np.savez writes): it does "
                "not start as a zip archive"
            )
    errors = _check_headers(path, members, max_bytes)
    if errors:
        raise InvalidInput(errors)
    arrays: dict[str, np.ndarray] = {}
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, NpzFile):  # the magic above says it cannot be; never trust
            raise _fail("not an .npz file (a zip archive of .npy arrays, as np.savez writes)")
        with loaded as npz:
            for key in ARRAYS:
                if key not in members:
                    continue
                try:
                    value: Any = npz[key]
                except ValueError as exc:
                    msg = str(exc)
                    if "allow_pickle" in msg or "pickle" in msg.lower():
                        msg = "holds pickled Python objects, which are never loaded"
                    errors.append({"loc": _loc(key), "msg": f"cannot be read: {msg}"})
                    continue
                except (
                    MemoryError,
                    OSError,
                    EOFError,
                    zipfile.BadZipFile,
                    zlib.error,
                    io.UnsupportedOperation,
                    NotImplementedError,
                    RuntimeError,
                ) as exc:
                    errors.append({"loc": _loc(key), "msg": f"cannot be read: {exc}"})
                    continue
                if not isinstance(value, np.ndarray):
                    errors.append({"loc": _loc(key), "msg": "is not a .npy array"})
                    continue
                arrays[key] = value
    except (MemoryError, OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _fail(f"cannot be read: {exc}") from None
    if errors:
        raise InvalidInput(errors)
    return arrays


def _member_name(names: set[str], key: str) -> str:
    """The zip member ``np.load(...)[key]`` opens: ``key`` itself if present, else ``key.npy``."""
    return key if key in names else key + ".npy"


def _check_headers(path: Path, members: set[str], max_bytes: int) -> list[ErrorItem]:
    """Read each array's ``.npy`` header (never its data) and check what it declares.

    numpy allocates the whole array a header declares before it reads a byte of data, so a
    tiny member claiming shape ``(10**11, 8)`` would raise MemoryError (or take the memory).
    The declared size must fit in the member (its uncompressed size from the zip directory,
    which zipfile never reads past) and within ``max_bytes``.
    """
    errors: list[ErrorItem] = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            for key in ARRAYS:
                if key not in members:
                    continue
                info = zf.getinfo(_member_name(names, key))
                try:
                    with zf.open(info) as fp:
                        problem = _header_problem(fp, info.file_size, max_bytes)
                except (
                    OSError,
                    EOFError,
                    ValueError,
                    zipfile.BadZipFile,
                    zlib.error,
                    NotImplementedError,
                    RuntimeError,
                ) as exc:
                    problem = f"cannot be read: {exc}"
                if problem:
                    errors.append({"loc": _loc(key), "msg": problem})
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        return [{"loc": _loc(), "msg": f"cannot be read: {exc}"}]
    return errors


def _header_problem(fp: IO[bytes], member_size: int, max_bytes: int) -> str | None:
    """What is wrong with the ``.npy`` header at the start of ``fp``, or None."""
    magic = fp.read(len(NPY_MAGIC) + 2)
    if len(magic) < len(NPY_MAGIC) + 2 or not magic.startswith(NPY_MAGIC):
        return "is not a .npy array"
    version = (magic[-2], magic[-1])
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        return f"uses .npy format version {version[0]}.{version[1]}; only 1.0 and 2.0 are read"
    if dtype.hasobject:
        return "holds pickled Python objects, which are never loaded"
    if dtype.itemsize == 0:
        return f"must be a numeric array, not dtype {dtype}"
    if any(int(dim) < 0 for dim in shape):
        return f"its header declares a negative dimension: shape {tuple(shape)}"
    count = 1
    for dim in shape:
        count *= int(dim)
    declared = count * dtype.itemsize
    data_bytes = member_size - fp.tell()
    if declared > max_bytes:
        return (
            f"its header declares shape {tuple(shape)} of {dtype} ({declared:,} bytes), over "
            f"the limit of {max_bytes:,} (ARCHBENCH_MAX_DATASET_BYTES)"
        )
    if declared > data_bytes:
        return (
            f"its header declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) but the "
            f"member holds only {max(data_bytes, 0):,} bytes of data"
        )
    return None


def _check_inputs(key: str, x: np.ndarray) -> list[ErrorItem]:
    if x.dtype.kind not in "biuf":
        return [{"loc": _loc(key), "msg": f"must be a numeric array, not dtype {x.dtype}"}]
    if x.ndim not in (2, 3, 4):
        return [
            {
                "loc": _loc(key),
                "msg": f"must have shape (N, F), (N, H, W) or (N, H, W, C); got {x.shape}",
            }
        ]
    if len(x) == 0 or 0 in x.shape[1:]:
        return [{"loc": _loc(key), "msg": f"is empty (shape {x.shape})"}]
    if x.dtype.kind == "f":
        for start in range(0, len(x), CHUNK):
            if not np.isfinite(x[start : start + CHUNK]).all():
                return [{"loc": _loc(key), "msg": "holds NaN or infinite values"}]
    return []


def _labels(key: str, y: np.ndarray) -> tuple[np.ndarray | None, list[ErrorItem]]:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return None, [
            {"loc": _loc(key), "msg": f"must be class labels of shape (N,); got {y.shape}"}
        ]
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            return None, [{"loc": _loc(key), "msg": "must be whole-number class labels"}]
        if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
            return None, [{"loc": _loc(key), "msg": f"labels must lie in 0..{MAX_CLASSES - 1}"}]
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        return None, [
            {"loc": _loc(key), "msg": f"must be integer class labels, not dtype {y.dtype}"}
        ]
    if len(y) == 0:
        return None, [{"loc": _loc(key), "msg": "is empty"}]
    if int(y.min()) < 0 or int(y.max()) >= MAX_CLASSES:
        return None, [{"loc": _loc(key), "msg": f"labels must lie in 0..{MAX_CLASSES - 1}"}]
    return y.astype(np.int64), []


def inspect_npz(path: Path, *, max_bytes: int) -> UploadFacts:
    """Check an uploaded ``.npz``; its facts, or InvalidInput with every located error."""
    arrays = _read_arrays(path, max_bytes)
    errors: list[ErrorItem] = []
    labels: dict[str, np.ndarray] = {}
    pairs = [("x_train", "y_train")] + ([("x_test", "y_test")] if "x_test" in arrays else [])
    for xk, yk in pairs:
        x_errors = _check_inputs(xk, arrays[xk])
        y, y_errors = _labels(yk, arrays[yk])
        errors += x_errors + y_errors
        if y is not None:
            labels[yk] = y
            if not x_errors and len(arrays[xk]) != len(y):
                errors.append(
                    {
                        "loc": _loc(yk),
                        "msg": f"has {len(y)} labels but {xk} has {len(arrays[xk])} samples",
                    }
                )
    x_train = arrays["x_train"]
    if "x_test" in arrays and arrays["x_test"].shape[1:] != x_train.shape[1:]:
        errors.append(
            {
                "loc": _loc("x_test"),
                "msg": f"samples of shape {arrays['x_test'].shape[1:]} differ from x_train's "
                f"{x_train.shape[1:]}",
            }
        )
    if errors:
        raise InvalidInput(errors)
    y_train = labels["y_train"]
    num_classes = int(y_train.max()) + 1
    if num_classes < 2:
        raise _fail("needs at least 2 classes (labels 0 and 1 at least)", "y_train")
    if "y_test" in labels and int(labels["y_test"].max()) >= num_classes:
        raise _fail(
            f"label {int(labels['y_test'].max())} is not among y_train's classes "
            f"0..{num_classes - 1}",
            "y_test",
        )
    y_all = np.concatenate(list(labels.values()))
    counts = np.bincount(y_all, minlength=num_classes)
    thin = [c for c in range(num_classes) if counts[c] < 2]
    if thin:
        raise _fail(
            f"class {thin[0]} has {int(counts[thin[0]])} sample(s); every class 0.."
            f"{num_classes - 1} needs at least 2 for a stratified split",
            "y_train",
        )
    shape = tuple(int(d) for d in x_train.shape[1:])
    input_shape = (*shape, 1) if len(shape) == 2 else shape
    return UploadFacts(input_shape=input_shape, num_classes=num_classes, samples=len(y_all))


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def store_upload(settings: Settings, tmp: Path) -> tuple[str, str]:
    """Move a checked file to ``uploads/<sha256>.npz``; returns (hash, path relative to data)."""
    content_hash = sha256_file(tmp)
    relative = f"uploads/{content_hash}.npz"
    dest = settings.data_dir / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    else:
        os.replace(tmp, dest)
    return content_hash, relative


def upload_info(session: Session, tenant: str, name: str) -> DatasetInfo | None:
    """This tenant's upload by ``upload:<id>``, or None (another tenant's is None too)."""
    if not name.startswith(UPLOAD_PREFIX):
        return None
    row = session.scalar(owned(Dataset, tenant).where(Dataset.id == name[len(UPLOAD_PREFIX) :]))
    if row is None:
        return None
    return DatasetInfo(
        name=name,
        input_shape=tuple(int(d) for d in row.input_shape),
        num_classes=row.num_classes,
        samples=row.samples,
        description=row.name or "uploaded dataset",
    )


class _TenantUploads:
    """Resolves this tenant's uploads by name (``upload:<id>``), and lists them for an
    error message (``names()``)."""

    def __init__(self, session: Session, tenant: str) -> None:
        self.session = session
        self.tenant = tenant

    def __call__(self, name: str) -> DatasetInfo | None:
        return upload_info(self.session, self.tenant, name)

    def names(self, limit: int = 50) -> list[str]:
        rows = self.session.scalars(
            owned(Dataset, self.tenant).order_by(Dataset.created_at.desc()).limit(limit)
        )
        return [f"{UPLOAD_PREFIX}{row.id}" + (f" ({row.name})" if row.name else "") for row in rows]


def resolver_for(session: Session, tenant: str) -> DatasetResolver:
    """A function that resolves this tenant's uploads by name, for validation; its
    ``names()`` lists them."""
    return _TenantUploads(session, tenant)


def dataset_out(row: Dataset) -> dict[str, Any]:
    """The JSON form of an uploaded dataset."""
    return {
        "name": UPLOAD_PREFIX + row.id,
        "id": row.id,
        "label": row.name,
        "input_shape": list(row.input_shape),
        "num_classes": row.num_classes,
        "samples": row.samples,
        "description": row.name or "uploaded dataset",
        "download": False,
        "builtin": False,
        "size_bytes": row.size_bytes,
        "content_hash": row.content_hash,
        "created_at": rfc3339(row.created_at),
    }


def upload_path_of(comparison_id: str, name: str) -> Path | None:
    """Where the worker finds a comparison's uploaded dataset: its tenant's row, or None."""
    if not name.startswith(UPLOAD_PREFIX):
        return None
    with session_scope() as session:
        tenant = session.scalar(select(Comparison.tenant).where(Comparison.id == comparison_id))
        if tenant is None:
            return None
        row = session.scalar(owned(Dataset, tenant).where(Dataset.id == name[len(UPLOAD_PREFIX) :]))
        if row is None:
            return None
        return get_settings().data_dir / row.path
