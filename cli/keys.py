"""``archbench keys``: create, list and revoke API keys (straight against the database)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

__all__ = ["register"]

TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _err(msg: str) -> None:
    print(f"archbench: {msg}", file=sys.stderr)


def cmd_create(args: argparse.Namespace) -> int:
    """Create a key for a tenant and print it once; only its hash is stored."""
    from core.store.db import session_scope
    from core.store.tenancy import create_key

    if not TENANT.match(args.tenant):
        _err("--tenant takes 1-64 letters, digits, '_', '.' or '-', starting with a letter/digit")
        return 2
    with session_scope() as session:
        row, key = create_key(session, args.tenant, args.name)
        key_id = row.id
    print(key)
    _err(f"created key {key_id} for tenant {args.tenant!r}; it is shown only this once")
    return 0


def _row(k: Any) -> dict[str, Any]:
    return {
        "id": k.id,
        "tenant": k.tenant,
        "name": k.name,
        "prefix": k.prefix,
        "created_at": k.created_at.isoformat(),
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


def cmd_list(args: argparse.Namespace) -> int:
    """List keys (never the keys themselves: their id, tenant, name and first characters)."""
    from core.store.db import session_scope
    from core.store.tenancy import list_keys

    with session_scope() as session:
        rows = [_row(k) for k in list_keys(session, args.tenant)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'id':36}  {'tenant':16}  {'prefix':10}  {'status':8}  name")
    for r in rows:
        status = "revoked" if r["revoked_at"] else "active"
        print(f"{r['id']:36}  {r['tenant']:16}  {r['prefix']:10}  {status:8}  {r['name'] or ''}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id; requests with it are refused within ARCHBENCH_KEY_CACHE_SECONDS."""
    from core.errors import NotFound
    from core.store.db import session_scope
    from core.store.tenancy import revoke_key

    try:
        with session_scope() as session:
            row = revoke_key(session, args.id)
            tenant = row.tenant
    except NotFound:
        _err(f"no API key {args.id!r} (see `archbench keys list`)")
        return 1
    from core.config import get_settings

    lag = get_settings().key_cache_seconds
    print(
        f"revoked key {args.id} of tenant {tenant!r}; running api processes refuse it within "
        f"{lag:g} s (ARCHBENCH_KEY_CACHE_SECONDS)"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``archbench keys {create,list,revoke}``."""
    keys = subparsers.add_parser("keys", help="manage API keys (ARCHBENCH_AUTH=true)")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key for a tenant; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default=None, help="a label, e.g. who or what uses it")
    create.set_defaults(func=cmd_create)
    ls = sub.add_parser("list", help="list keys")
    ls.add_argument("--tenant", default=None)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_revoke)
