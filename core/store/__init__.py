"""Persistence: the engine and sessions (``db``), the tables (``tables``), the short batched
reads that downloads use (``table_reads``), the tenant-scoped queries (``tenancy``),
Alembic's upgrade path (``migrate``) and where a trial's checkpoint folder lives on disk
(``checkpoints``: the worker writes it, the sweeper removes what ended trials left).

Everything that touches SQLAlchemy's engine or the schema lives here. It imports only the
shared modules of ``core`` (config, errors, spec, status, timestamps, logging) and ``models``;
every other package of ``core`` may import it.
"""
