"""Start-up refusal: a shared deployment never serves without keys unless told explicitly.

``check_auth_setup`` runs against a real, migrated Postgres database (the one the api would
serve); the settings it judges vary: embedded or distributed, production or not, auth on or
off, keys or none, and ``ARCHBENCH_ALLOW_NO_AUTH``. A real api process refusing is tested in
test_security_api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from tests.support.services import fresh_database, in_process_database

pytestmark = pytest.mark.services


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("ARCHBENCH_DATA_DIR", str(tmp_path))
    with fresh_database("archbench_startup") as url, in_process_database(url, monkeypatch):
        yield url


@pytest.fixture
def settings_for(database: str, tmp_path: Path) -> Any:
    def make(*, distributed: bool, **kw: Any) -> Settings:
        url = database if distributed else f"sqlite:///{tmp_path / 'archbench.db'}"
        return Settings(database_url=url, data_dir=tmp_path, **kw)

    return make


def test_distributed_without_keys_refuses_unless_told(
    settings_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from api.auth import UnsafeConfiguration, check_auth_setup

    caplog.set_level(logging.WARNING, "archbench.api")
    # Auth on, zero keys, Postgres, not production: refused, and the message says what to do.
    with pytest.raises(UnsafeConfiguration) as refused:
        check_auth_setup(settings_for(distributed=True, auth=True))
    msg = str(refused.value)
    assert "refusing to start" in msg
    assert "distributed deployment" in msg
    assert "no API key exists" in msg
    assert "archbench keys create --tenant NAME" in msg
    assert "ARCHBENCH_ALLOW_NO_AUTH=true" in msg
    # Auth off on Postgres: refused too.
    with pytest.raises(UnsafeConfiguration) as off:
        check_auth_setup(settings_for(distributed=True, auth=False))
    assert "ARCHBENCH_AUTH off" in str(off.value)
    # Told explicitly: both start, each with a warning.
    caplog.clear()
    for auth in (True, False):
        check_auth_setup(settings_for(distributed=True, auth=auth, allow_no_auth=True))
    assert any("no API key exists" in r.message for r in caplog.records)
    assert any("authentication is OFF" in r.message for r in caplog.records)


def test_embedded_may_run_without_keys_production_may_not(settings_for: Any) -> None:
    from api.auth import UnsafeConfiguration, check_auth_setup

    for auth in (True, False):
        check_auth_setup(settings_for(distributed=False, auth=auth))
        with pytest.raises(UnsafeConfiguration, match="ARCHBENCH_ENV=production"):
            check_auth_setup(settings_for(distributed=True, auth=auth, env="production"))


def test_distributed_with_a_key_starts_and_a_revoked_one_does_not_count(
    settings_for: Any,
) -> None:
    from api.auth import UnsafeConfiguration, check_auth_setup
    from core.store.db import session_scope
    from core.store.tenancy import create_key, revoke_key

    with session_scope() as s:
        key_id = create_key(s, "acme", "ops")[0].id
    check_auth_setup(settings_for(distributed=True, auth=True))
    with session_scope() as s:
        revoke_key(s, key_id)
    with pytest.raises(UnsafeConfiguration):
        check_auth_setup(settings_for(distributed=True, auth=True))
