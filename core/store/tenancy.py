"""Tenants and API keys: every tenant-owned query goes through ``owned()``.

A key is ``ab_<random>``; only its SHA-256 is stored, with a short prefix to recognise it in
``archbench keys list``. Rows that belong to a comparison (trials, metrics, reports, events)
are reached only through their comparison, which is looked up with ``owned()``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.store.db import upsert_insert
from core.store.tables import ApiKey, Comparison, Dataset, utcnow

__all__ = [
    "KEY_PREFIX",
    "TENANT_NAME",
    "active_key_count",
    "create_key",
    "ensure_key",
    "hash_key",
    "list_keys",
    "owned",
    "revoke_key",
    "tenant_for_key",
]

KEY_PREFIX = "ab_"
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as `archbench keys` takes it
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key

Owned = TypeVar("Owned", Comparison, Dataset)


def owned(table: type[Owned], tenant: str) -> Select[Owned]:
    """``SELECT table WHERE tenant = :tenant``: the one way to query a tenant's rows."""
    return select(table).where(table.tenant == tenant)


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(session: Session, tenant: str, name: str | None = None) -> tuple[ApiKey, str]:
    """A new key for ``tenant``; returns the row and the key itself (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant=tenant, name=name, prefix=key[:10], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def ensure_key(session: Session, tenant: str, key: str, name: str = "bootstrap") -> str:
    """Store ``key`` for ``tenant`` unless it is stored already: "created", "present" or
    "revoked" (a revoked key stays revoked). Safe when several processes start at once."""
    found = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if found is not None:
        return "revoked" if found.revoked_at is not None else "present"
    inserted = session.execute(
        upsert_insert(session, ApiKey)
        .values(
            id=str(uuid.uuid4()),
            tenant=tenant,
            name=name,
            prefix=key[:10],
            key_hash=hash_key(key),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[ApiKey.key_hash])
        .returning(ApiKey.id)
    ).first()
    return "created" if inserted else "present"


def list_keys(session: Session, tenant: str | None = None) -> list[ApiKey]:
    """Keys, oldest first, optionally of one tenant."""
    q = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        q = q.where(ApiKey.tenant == tenant)
    return list(session.scalars(q))


def revoke_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key by id (idempotent); NotFound if there is no such key."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"No API key {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    session.flush()
    return row


def tenant_for_key(session: Session, key: str) -> str | None:
    """The tenant of a valid, unrevoked key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = session.execute(
        select(ApiKey.id, ApiKey.tenant, ApiKey.last_used_at).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return str(row.tenant)


def active_key_count(session: Session) -> int:
    """How many keys are not revoked."""
    n: Any = session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
    )
    return int(n or 0)
