"""Per-trial test-set predictions and per-layer Gram matrices (do they differ?).

Revision ID: 0004_diffs
Revises: 0004_status_checks
Create Date: 2026-12-03 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_diffs"
down_revision: str | None = "0004_status_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trial_predictions",
        sa.Column("trial_id", sa.String(length=36), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("examples", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.LargeBinary(), nullable=False),
        sa.Column("predicted", sa.LargeBinary(), nullable=False),
        sa.Column("probs", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trials.id"],
            name=op.f("fk_trial_predictions_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trial_id", name=op.f("pk_trial_predictions")),
    )
    op.create_table(
        "trial_layer_grams",
        sa.Column("trial_id", sa.String(length=36), nullable=False),
        sa.Column("layer_index", sa.Integer(), nullable=False),
        sa.Column("layer", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("probe_size", sa.Integer(), nullable=False),
        sa.Column("probe_hash", sa.String(length=64), nullable=False),
        sa.Column("gram", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trials.id"],
            name=op.f("fk_trial_layer_grams_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trial_id", "layer_index", name=op.f("pk_trial_layer_grams")),
    )


def downgrade() -> None:
    op.drop_table("trial_layer_grams")
    op.drop_table("trial_predictions")
