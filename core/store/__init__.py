"""Persistence: the engine and sessions (``db``), the tables (``tables``), the short batched
reads that downloads use (``table_reads``), the tenant-scoped queries (``tenancy``) and
Alembic's upgrade path (``migrate``).

Everything that touches SQLAlchemy's engine or the schema lives here. It imports only the
shared modules of ``core`` (config, errors, spec, status, timestamps, logging) and ``models``;
every other package of ``core`` may import it.
"""
