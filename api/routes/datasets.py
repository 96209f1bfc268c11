"""``/v1/datasets``: the built-in datasets and this tenant's uploads; upload an ``.npz``."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from sqlalchemy import and_, or_

from api.deps import SessionDep, SettingsDep, TenantDep
from api.paging import CursorQuery, LimitQuery, decode_cursor, encode_cursor
from api.schemas import Page
from core.data.uploads import dataset_out, inspect_npz, store_upload, upload_named
from core.datasets import BUILTIN_DATASETS, UPLOAD_LABEL
from core.errors import InvalidInput, PayloadTooLarge
from core.spec import NO_NUL
from core.store.tables import Dataset
from core.store.tenancy import owned

__all__ = ["router"]

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

COPY_CHUNK = 1 << 20


@router.get("", response_model=Page[dict[str, Any]])
def list_datasets(
    session: SessionDep,
    tenant: TenantDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[dict[str, Any]]:
    """The built-in datasets, then this tenant's uploads (oldest first)."""
    builtins = [d.to_dict() for d in BUILTIN_DATASETS.values()]
    # ("b", index of the last built-in shown, None) or ("u", created_at, id) of an upload.
    kind, a, b = (
        decode_cursor(cursor, ("b", int, None), ("u", datetime, str)) if cursor else ("b", -1, None)
    )
    items: list[dict[str, Any]] = []
    q = owned(Dataset, tenant)
    if kind == "b":
        start = min(max(a + 1, 0), len(builtins))
        items = builtins[start : start + limit]
        if len(items) == limit and start + limit < len(builtins):
            return Page(items=items, next_cursor=encode_cursor("b", start + limit - 1, None))
    else:
        q = q.where(or_(Dataset.created_at > a, and_(Dataset.created_at == a, Dataset.id > b)))
    room = limit - len(items)
    rows = list(session.scalars(q.order_by(Dataset.created_at, Dataset.id).limit(room + 1)))
    more = len(rows) > room
    rows = rows[:room]
    items += [dataset_out(r) for r in rows]
    next_cursor = None
    if more:
        next_cursor = (
            encode_cursor("u", rows[-1].created_at.isoformat(), rows[-1].id)
            if rows
            else encode_cursor("b", len(builtins) - 1, None)
        )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    responses={
        201: {
            "description": "The dataset, usable by this tenant as its `name`; `dropped` lists "
            "the members that were not stored (anything but x_train, y_train, x_test, y_test)."
        },
        413: {"description": "Over ARCHBENCH_MAX_UPLOAD_BYTES."},
        422: {"description": "Not a valid .npz dataset; `errors` say where."},
        429: {
            "description": "Over ARCHBENCH_MAX_CONCURRENT_UPLOADS uploads being received or "
            "checked; refused from the headers, before the body is read."
        },
    },
)
def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    file: Annotated[
        UploadFile,
        File(description="An .npz with x_train, y_train and optionally x_test, y_test."),
    ],
    name: Annotated[
        str | None,
        Form(
            max_length=200,
            description="A name, unique among your uploads, that a spec's `dataset.name` may "
            "give instead of `upload:<id>`: letters, digits, `_`, `.`, `-`.",
        ),
        NO_NUL,
    ] = None,
) -> dict[str, Any]:
    """Upload an ``.npz`` dataset; it is checked, stored by content hash, named ``upload:<id>``
    (and by ``name`` when given)."""
    if name is not None:
        _check_name(session, tenant, name)
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".incoming-{uuid.uuid4().hex}.npz"
    checked = folder / f".checked-{uuid.uuid4().hex}.npz"
    try:
        _copy_limited(file, tmp, settings.max_upload_bytes)
        file.file.close()  # the spooled body: its disk goes now, not after the check
        # Checked a chunk at a time; only the checked arrays are written, and stored.
        facts, dropped = inspect_npz(tmp, max_bytes=settings.max_dataset_bytes, dest=checked)
        size = checked.stat().st_size
        content_hash, relative = store_upload(settings, checked)
    finally:
        for path in (tmp, checked):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    row = Dataset(
        tenant=tenant,
        name=name,
        content_hash=content_hash,
        path=relative,
        input_shape=list(facts.input_shape),
        num_classes=facts.num_classes,
        samples=facts.samples,
        size_bytes=size,
    )
    session.add(row)
    session.commit()
    return {**dataset_out(row), "dropped": dropped}


def _check_name(session: SessionDep, tenant: str, name: str) -> None:
    """An upload's name must be one a spec can give, and not one this tenant already uses."""
    loc: list[str | int] = ["body", "name"]
    if not re.fullmatch(UPLOAD_LABEL, name):
        msg = (
            f"{name!r} cannot name a dataset in a spec: use letters, digits, '_', '.' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
        raise InvalidInput([{"loc": loc, "msg": msg}])
    if name in BUILTIN_DATASETS:
        msg = f"{name!r} is a built-in dataset's name; give the upload another"
        raise InvalidInput([{"loc": loc, "msg": msg}])
    taken = upload_named(session, tenant, name)
    if taken is not None:
        msg = f"you already have an upload named {name!r} (upload:{taken.id}); names are unique"
        raise InvalidInput([{"loc": loc, "msg": msg}])


def _copy_limited(upload: UploadFile, dest: Path, limit: int) -> int:
    size = 0
    with dest.open("wb") as out:
        while chunk := upload.file.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"The file exceeds the limit of {limit:,} bytes (ARCHBENCH_MAX_UPLOAD_BYTES): "
                    f"{size:,} bytes had arrived when reading stopped."
                )
            out.write(chunk)
    if size == 0:
        raise InvalidInput([{"loc": ["body", "file"], "msg": "the file is empty"}])
    return size
