"""Per-trial scores on corrupted copies of the test set (robustness under corruptions).

Revision ID: 0006_corruption_scores
Revises: 0005_stage_replicate
Create Date: 2026-12-07 19:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_corruption_scores"
down_revision: str | None = "0005_stage_replicate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trial_corruption_scores",
        sa.Column("trial_id", sa.String(length=36), nullable=False),
        sa.Column("corruption", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trials.id"],
            name=op.f("fk_trial_corruption_scores_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "trial_id", "corruption", "severity", name=op.f("pk_trial_corruption_scores")
        ),
    )


def downgrade() -> None:
    op.drop_table("trial_corruption_scores")
