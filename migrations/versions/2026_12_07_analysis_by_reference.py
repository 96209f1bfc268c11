"""A reused trial refers to the stored analysis of the trial it reuses instead of copying it.

``trials.analysis_id`` names the trial whose predictions and Grams a trial's result has (null:
its own). The analysis rows no longer go with their trial by a cascading foreign key: they stay
while any trial refers to them and are removed with the last reference (the sweeper). The
copies reused trials stored before this revision stay theirs (``analysis_id`` null).

Downgrade copies the referenced rows back under each reusing trial and drops the rows whose
trial is gone, so the cascading keys can be restored.

Revision ID: 0006_analysis_by_reference
Revises: 0006_corruption_scores
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_analysis_by_reference"
down_revision: str | None = "0006_corruption_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("trial_predictions", "trial_layer_grams")


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("analysis_id", sa.String(36), nullable=True))
        batch.create_index(op.f("ix_trials_analysis_id"), ["analysis_id"])
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_trial_id_trials"), type_="foreignkey")


def downgrade() -> None:
    op.execute(
        "INSERT INTO trial_predictions "
        "(trial_id, n, num_classes, examples, labels, predicted, probs, recorded_at) "
        "SELECT t.id, p.n, p.num_classes, p.examples, p.labels, p.predicted, p.probs, "
        "p.recorded_at FROM trials t JOIN trial_predictions p ON p.trial_id = t.analysis_id"
    )
    op.execute(
        "INSERT INTO trial_layer_grams "
        "(trial_id, layer_index, layer, kind, probe_size, probe_hash, gram) "
        "SELECT t.id, g.layer_index, g.layer, g.kind, g.probe_size, g.probe_hash, g.gram "
        "FROM trials t JOIN trial_layer_grams g ON g.trial_id = t.analysis_id"
    )
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE trial_id NOT IN (SELECT id FROM trials)")
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                op.f(f"fk_{table}_trial_id_trials"),
                "trials",
                ["trial_id"],
                ["id"],
                ondelete="CASCADE",
            )
    with op.batch_alter_table("trials") as batch:
        batch.drop_index(op.f("ix_trials_analysis_id"))
        batch.drop_column("analysis_id")
