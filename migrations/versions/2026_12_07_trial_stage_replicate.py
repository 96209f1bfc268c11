"""Trials get a stage, a tuned configuration and a replicate number.

``stage`` is ``test`` for the trials that are tested (every trial before this revision) and
``tuning`` for the trials of a tuning stage, which are scored on the validation split only.
``config`` holds the tuned training knobs a trial ran with (null: the spec's own). ``replicate``
is 0 for a variant's trial at a seed and k >= 1 for its k-th replicate: the same data seed (split
and order) with another initialisation seed, the within-variant control. A (variant, seed) pair
is therefore unique per stage and replicate.

Revision ID: 0005_stage_replicate
Revises: 0004_diffs
Create Date: 2026-12-07 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_stage_replicate"
down_revision: str | None = "0004_diffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = "stage IN ('tuning', 'test')"


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="test"))
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("replicate", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint(op.f("uq_trials_comparison_id_variant_seed"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_trials_comparison_id_variant_stage_seed_replicate"),
            ["comparison_id", "variant", "stage", "seed", "replicate"],
        )
        batch.create_check_constraint(op.f("ck_trials_stage"), STAGES)


def downgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.drop_constraint(op.f("ck_trials_stage"), type_="check")
        batch.drop_constraint(
            op.f("uq_trials_comparison_id_variant_stage_seed_replicate"), type_="unique"
        )
        batch.create_unique_constraint(
            op.f("uq_trials_comparison_id_variant_seed"), ["comparison_id", "variant", "seed"]
        )
        batch.drop_column("replicate")
        batch.drop_column("config")
        batch.drop_column("stage")
