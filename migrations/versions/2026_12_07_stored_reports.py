"""Reports are stored: one row per (comparison, kind of answer) with the state it was computed
from, so a read serves it instead of computing it again.

Revision ID: 0006_stored_reports
Revises: 0006_analysis_by_reference
Create Date: 2026-12-07 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_stored_reports"
down_revision: str | None = "0006_analysis_by_reference"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("comparison_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("served", sa.Text(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_reports_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comparison_id", "kind", name=op.f("pk_reports")),
    )


def downgrade() -> None:
    op.drop_table("reports")
