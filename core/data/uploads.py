"""Uploaded datasets: check an ``.npz`` without executing anything, store it by content hash.

The file is opened with ``np.load(allow_pickle=False)`` only after its zip directory and each
array's ``.npy`` header were read: the declared uncompressed sizes bound the memory it can take,
and a header whose shape needs more bytes than its member holds (or than the dataset limit) is
refused before numpy allocates anything for it. Every problem is reported with
its location, ``["body", "file", "x_train"]`` and so on. Files live in
``<data dir>/uploads/<sha256>.npz``; rows in ``datasets`` give each tenant its own name for one,
``upload:<id>`` (or the name it was uploaded with, unique per tenant), which only that tenant
can see or use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.datasets import BUILTIN_DATASETS, UPLOAD_PREFIX, DatasetInfo
from core.errors import ErrorItem, InvalidInput
from core.store.db import session_scope
from core.store.tables import Comparison, Dataset
from core.store.tenancy import owned
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
    "upload_named",
    "upload_path_of",
]

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 10_000
ZIP_MAGIC = b"PK\x03\x04"  # a zip archive's first local file header (np.savez writes one)
NPY_MAGIC = b"\x93NUMPY"
# An .npz dataset holds four arrays; an archive with more members than this is refused from
# its end record, before its directory is read (Python builds an object per member: 1.9 M
# empty members took 1.7 GB), and so the ``dropped`` list has fewer entries than this too.
MAX_MEMBERS = 64
DIRECTORY_BYTES_PER_MEMBER = 1024  # a central directory larger than MAX_MEMBERS of these lies

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


READ_BYTES = 1 << 20  # bytes of array data decoded at a time: validation memory is bounded
WRITE_LEVEL = 1  # deflate level of the re-written file: fast, and zeros still shrink 1000x
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the same arrays always give the same file (and hash)


class _Header:
    """What an ``.npy`` header declares."""

    def __init__(self, shape: tuple[int, ...], fortran: bool, dtype: np.dtype[Any]) -> None:
        self.shape = shape
        self.fortran = fortran
        self.dtype = dtype

    @property
    def count(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


def _members(zf: zipfile.ZipFile) -> tuple[dict[str, zipfile.ZipInfo], list[dict[str, str]]]:
    """The array members by key, and the members that are dropped (with why). Two members
    for one key (``x_train`` and ``x_train.npy``) are refused: which one np.load would read
    is an accident of naming, and the checked one must be the stored one."""
    found: dict[str, zipfile.ZipInfo] = {}
    dropped: list[dict[str, str]] = []
    errors: list[ErrorItem] = []
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:  # an end record that understated them
        raise _fail(f"the archive has {len(members):,} members; at most {MAX_MEMBERS} are read")
    for info in members:
        name = info.filename
        key = name.removesuffix(".npy")
        if key not in ARRAYS:
            why = (
                "a path, not an array name"
                if "/" in name or "\\" in name or name.startswith(".")
                else "not one of x_train, y_train, x_test, y_test"
            )
            dropped.append({"member": name[:200], "reason": f"{why}: not stored"})
            continue
        if key in found:
            errors.append(
                {"loc": _loc(key), "msg": f"appears twice ({found[key].filename} and {name})"}
            )
            continue
        found[key] = info
    if errors:
        raise InvalidInput(errors)
    return found, dropped


def _directory_size(fh: IO[bytes]) -> tuple[int, int] | None:
    """(members, central directory bytes) as the archive's end record declares them (its
    zip64 record when there is one), or None without an end record (zipfile then refuses)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_start = max(0, size - (22 + 0xFFFF))  # the end record, and a comment of at most 64 KB
    fh.seek(tail_start)
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    members, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
    if members != 0xFFFF and directory != 0xFFFFFFFF:
        return members, directory
    locator = tail[max(0, at - 20) : at]
    if len(locator) < 20 or not locator.startswith(b"PK\x06\x07"):
        return members, directory
    (record_at,) = struct.unpack("<Q", locator[8:16])
    fh.seek(record_at)
    record = fh.read(56)
    if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
        return members, directory
    members64, directory64 = struct.unpack("<QQ", record[32:48])
    return int(members64), int(directory64)


def _refuse_crowded(path: Path) -> None:
    """InvalidInput when the archive declares more members (or a larger directory) than an
    .npz dataset has any use for; nothing of the directory is read."""
    with path.open("rb") as fh:
        declared = _directory_size(fh)
    if declared is None:
        return
    members, directory = declared
    if members > MAX_MEMBERS:
        raise _fail(
            f"the archive has {members:,} members; a dataset needs at most 4 (x_train, "
            f"y_train, x_test, y_test) and archives of more than {MAX_MEMBERS} are not read"
        )
    if directory > MAX_MEMBERS * DIRECTORY_BYTES_PER_MEMBER:
        raise _fail(
            f"the archive's directory takes {directory:,} bytes, more than {MAX_MEMBERS} "
            "members need; it is not read"
        )


def _read_header(fp: IO[bytes], member_size: int, max_bytes: int) -> _Header | str:
    """The header at the start of ``fp``, or what is wrong with it. numpy's own messages are
    never echoed (a crafted header made them print ``<ast.Call object at 0x...>``)."""
    magic = fp.read(len(NPY_MAGIC) + 2)
    if len(magic) < len(NPY_MAGIC) + 2 or not magic.startswith(NPY_MAGIC):
        return "is not a .npy array"
    version = (magic[-2], magic[-1])
    try:
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            return f"uses .npy format version {version[0]}.{version[1]}; only 1.0 and 2.0 are read"
    except (ValueError, SyntaxError, TypeError, KeyError, OverflowError, RecursionError):
        return "its .npy header cannot be parsed (it must be a dict literal as numpy writes)"
    if dtype.hasobject:
        return "holds pickled Python objects, which are never loaded"
    if dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        return f"must be a numeric array, not dtype {dtype}"
    if any(int(dim) < 0 for dim in shape):
        return f"its header declares a negative dimension: shape {tuple(shape)}"
    header = _Header(tuple(int(d) for d in shape), bool(fortran), dtype)
    declared = header.count * dtype.itemsize
    data_bytes = member_size - fp.tell()
    if declared > max_bytes:
        return (
            f"its header declares shape {header.shape} of {dtype} ({declared:,} bytes), over "
            f"the limit of {max_bytes:,} (ARCHBENCH_MAX_DATASET_BYTES)"
        )
    if declared > data_bytes:
        return (
            f"its header declares shape {header.shape} of {dtype} ({declared:,} bytes) but the "
            f"member holds only {max(data_bytes, 0):,} bytes of data"
        )
    return header


def _shape_problem(key: str, h: _Header) -> str | None:
    if key.startswith("x"):
        if h.dtype.kind not in "biuf":
            return f"must be a numeric array, not dtype {h.dtype}"
        if len(h.shape) not in (2, 3, 4):
            return f"must have shape (N, F), (N, H, W) or (N, H, W, C); got {h.shape}"
        if h.shape[0] == 0 or 0 in h.shape[1:]:
            return f"is empty (shape {h.shape})"
        return None
    if not (len(h.shape) == 1 or (len(h.shape) == 2 and h.shape[1] == 1)):
        return f"must be class labels of shape (N,); got {h.shape}"
    if h.dtype.kind not in "iuf":
        return f"must be integer class labels, not dtype {h.dtype}"
    if h.shape[0] == 0:
        return "is empty"
    return None


class _LabelScan:
    """Label checks and class counts, a chunk at a time."""

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.int64)
        self.problem: str | None = None

    def feed(self, y: np.ndarray) -> None:
        if self.problem or not len(y):
            return
        if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
            self.problem = "must be whole-number class labels"
            return
        if float(y.min()) < 0 or float(y.max()) >= MAX_CLASSES:
            self.problem = f"labels must lie in 0..{MAX_CLASSES - 1}"
            return
        chunk = np.bincount(y.astype(np.int64))
        if len(chunk) > len(self.counts):
            chunk[: len(self.counts)] += self.counts
            self.counts = chunk
        else:
            self.counts[: len(chunk)] += chunk


def _copy_checked(
    key: str, h: _Header, src: IO[bytes], out: zipfile.ZipFile
) -> tuple[str | None, np.ndarray | None]:
    """Stream one member's data into ``out`` as a fresh ``.npy``, checking each chunk; the
    problem found (or None) and, for labels, the class counts."""
    info = zipfile.ZipInfo(key + ".npy", date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    scan = _LabelScan() if key.startswith("y") else None
    itemsize = h.dtype.itemsize
    left = h.count * itemsize
    per_read = max(itemsize, READ_BYTES - READ_BYTES % itemsize)
    with out.open(info, "w", force_zip64=True) as dst:
        header = {
            "descr": np.lib.format.dtype_to_descr(h.dtype),
            "fortran_order": h.fortran,
            "shape": h.shape,
        }
        np.lib.format.write_array_header_2_0(dst, header)
        while left:
            data = src.read(min(per_read, left))
            if not data or len(data) % itemsize:
                return "ends before the data its header declares", None
            left -= len(data)
            values = np.frombuffer(data, dtype=h.dtype)
            if scan is not None:
                scan.feed(values)
                if scan.problem:
                    return scan.problem, None
            elif h.dtype.kind == "f" and not np.isfinite(values).all():
                return "holds NaN or infinite values", None
            dst.write(data)
    return None, scan.counts if scan is not None else None


def _rewrite(path: Path, dest: Path, max_bytes: int) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Check ``path`` a chunk at a time and write the checked arrays, and nothing else, to
    ``dest``; the headers and label counts by key, and the dropped members."""
    with path.open("rb") as fh:
        if fh.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            # np.load would read a file that starts as a .npy (an .npy + zip polyglot) as one
            # array, and anything else as a pickle.
            raise _fail(
                "not an .npz file (a zip archive of .npy arrays, as np.savez writes): it does "
                "not start as a zip archive"
            )
    _refuse_crowded(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _fail("not an .npz file (a zip archive of .npy arrays, as np.savez writes)") from None
    with zf:
        found, dropped = _members(zf)
        total = sum(i.file_size for i in found.values())
        if total > max_bytes:
            raise _fail(
                f"the arrays take {total:,} bytes uncompressed, over the limit of {max_bytes:,} "
                "(ARCHBENCH_MAX_DATASET_BYTES)"
            )
        errors: list[ErrorItem] = [
            {"loc": _loc(k), "msg": "missing: the .npz file must hold x_train and y_train"}
            for k in ("x_train", "y_train")
            if k not in found
        ]
        if ("x_test" in found) != ("y_test" in found):
            k = "y_test" if "x_test" in found else "x_test"
            errors.append({"loc": _loc(k), "msg": "missing: x_test and y_test come together"})
        if errors:
            raise InvalidInput(errors)
        headers: dict[str, _Header] = {}
        counts: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(dest, "w", compresslevel=WRITE_LEVEL) as out:
            for key in ARRAYS:
                if key not in found:
                    continue
                info = found[key]
                header: _Header | None = None
                try:
                    with zf.open(info) as src:
                        got = _read_header(src, info.file_size, max_bytes)
                        if isinstance(got, str):
                            errors.append({"loc": _loc(key), "msg": got})
                            continue
                        header = got
                        problem = _shape_problem(key, got)
                        if problem is None:
                            problem, label_counts = _copy_checked(key, got, src, out)
                            if label_counts is not None:
                                counts[key] = label_counts
                except (
                    OSError,
                    EOFError,
                    ValueError,
                    zipfile.BadZipFile,
                    zlib.error,
                    NotImplementedError,
                    RuntimeError,
                ) as exc:
                    problem = f"cannot be read ({type(exc).__name__})"
                if problem:
                    errors.append({"loc": _loc(key), "msg": problem})
                elif header is not None:
                    headers[key] = header
        if errors:
            raise InvalidInput(errors)
    return {"headers": headers, "counts": counts}, dropped


def inspect_npz(
    path: Path, *, max_bytes: int, dest: Path | None = None
) -> tuple[UploadFacts, list[dict[str, str]]]:
    """Check an uploaded ``.npz`` in bounded memory and write its checked arrays, and only
    those, to ``dest`` (a fresh .npz; a scratch file when None). Its facts and the members
    dropped (extra arrays, path-like names), or InvalidInput with every located error."""
    scratch = dest or path.with_name(path.name + ".checked")
    try:
        found, dropped = _rewrite(path, scratch, max_bytes)
    finally:
        if dest is None:
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
    headers: dict[str, _Header] = found["headers"]
    label_counts: dict[str, np.ndarray] = found["counts"]
    errors: list[ErrorItem] = []
    pairs = [("x_train", "y_train")] + ([("x_test", "y_test")] if "x_test" in headers else [])
    for xk, yk in pairs:
        n_x, n_y = headers[xk].shape[0], headers[yk].shape[0]
        if n_x != n_y:
            errors.append({"loc": _loc(yk), "msg": f"has {n_y} labels but {xk} has {n_x} samples"})
    x_train = headers["x_train"]
    if "x_test" in headers and headers["x_test"].shape[1:] != x_train.shape[1:]:
        errors.append(
            {
                "loc": _loc("x_test"),
                "msg": f"samples of shape {headers['x_test'].shape[1:]} differ from x_train's "
                f"{x_train.shape[1:]}",
            }
        )
    if errors:
        raise InvalidInput(errors)
    train_counts = label_counts["y_train"]
    num_classes = len(train_counts)
    if num_classes < 2:
        raise _fail("needs at least 2 classes (labels 0 and 1 at least)", "y_train")
    test_counts = label_counts.get("y_test")
    if test_counts is not None and len(test_counts) > num_classes:
        raise _fail(
            f"label {len(test_counts) - 1} is not among y_train's classes 0..{num_classes - 1}",
            "y_test",
        )
    counts = train_counts.copy()
    if test_counts is not None:
        counts[: len(test_counts)] += test_counts
    thin = [c for c in range(num_classes) if counts[c] < 2]
    if thin:
        raise _fail(
            f"class {thin[0]} has {int(counts[thin[0]])} sample(s); every class 0.."
            f"{num_classes - 1} needs at least 2 for a stratified split",
            "y_train",
        )
    shape = x_train.shape[1:]
    input_shape = (*shape, 1) if len(shape) == 2 else shape
    facts = UploadFacts(input_shape=input_shape, num_classes=num_classes, samples=int(counts.sum()))
    return facts, dropped


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


def upload_named(session: Session, tenant: str, name: str) -> Dataset | None:
    """This tenant's upload by ``upload:<id>`` or by the name it was uploaded with (names are
    unique per tenant; of rows stored before they were, the newest), or None."""
    q = owned(Dataset, tenant)
    if name.startswith(UPLOAD_PREFIX):
        return session.scalar(q.where(Dataset.id == name[len(UPLOAD_PREFIX) :]))
    if name in BUILTIN_DATASETS:
        return None
    return session.scalar(
        q.where(Dataset.name == name).order_by(Dataset.created_at.desc()).limit(1)
    )


def upload_info(session: Session, tenant: str, name: str) -> DatasetInfo | None:
    """This tenant's upload by ``upload:<id>`` or by its name, as ``upload:<id>``; or None
    (another tenant's is None too)."""
    row = upload_named(session, tenant, name)
    if row is None:
        return None
    return DatasetInfo(
        name=UPLOAD_PREFIX + row.id,
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
