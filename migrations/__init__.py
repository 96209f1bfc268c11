"""Alembic's revisions for archbench, a package so that an installed wheel carries them
(``core.store.migrate`` finds them by import, not through the source tree)."""
