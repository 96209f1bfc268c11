"""CHECK constraints on the status columns: a trial or comparison holds one of five words.

The words are written out here, as they were when this revision was made (a migration is
history; core/status.py is today's code). SQLite cannot add a constraint to a table, so batch
mode copies the table.

Revision ID: 0004_status_checks
Revises: 0003
Create Date: 2026-12-03 08:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_status_checks"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    for table in ("comparisons", "trials"):
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(op.f(f"ck_{table}_status"), STATUSES)


def downgrade() -> None:
    for table in ("trials", "comparisons"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
