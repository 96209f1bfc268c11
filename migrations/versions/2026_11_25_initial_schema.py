"""Initial schema: comparisons, trials (one per variant and seed), epoch_metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:42:14.481081
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('comparisons',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('analyses', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('trials_total', sa.Integer(), nullable=False),
    sa.Column('epochs_total', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comparisons')),
    sa.UniqueConstraint('tenant', 'idempotency_key', name=op.f('uq_comparisons_tenant_idempotency_key'))
    )
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.create_index('ix_comparisons_tenant_created', ['tenant', 'created_at', 'id'], unique=False)

    op.create_table('trials',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('comparison_id', sa.String(length=36), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=False),
    sa.Column('variant_index', sa.Integer(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('params', sa.BigInteger(), nullable=True),
    sa.Column('trainable_params', sa.BigInteger(), nullable=True),
    sa.Column('flops', sa.BigInteger(), nullable=True),
    sa.Column('epochs_planned', sa.Integer(), nullable=False),
    sa.Column('epochs_done', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('train_seconds', sa.Float(), nullable=True),
    sa.Column('test_accuracy', sa.Float(), nullable=True),
    sa.Column('test_loss', sa.Float(), nullable=True),
    sa.Column('best_val_accuracy', sa.Float(), nullable=True),
    sa.Column('test_metrics', sa.JSON(), nullable=True),
    sa.Column('inference_ms_per_sample', sa.Float(), nullable=True),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('device', sa.String(length=200), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparisons.id'], name=op.f('fk_trials_comparison_id_comparisons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('comparison_id', 'variant', 'seed', name=op.f('uq_trials_comparison_id_variant_seed'))
    )
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trials_comparison_id'), ['comparison_id'], unique=False)
        batch_op.create_index('ix_trials_status_lease', ['status', 'lease_expires_at'], unique=False)

    op.create_table('epoch_metrics',
    sa.Column('trial_id', sa.String(length=36), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_epoch_metrics_trial_id_trials'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trial_id', 'epoch', name=op.f('pk_epoch_metrics'))
    )



def downgrade() -> None:
    
    op.drop_table('epoch_metrics')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_status_lease')
        batch_op.drop_index(batch_op.f('ix_trials_comparison_id'))

    op.drop_table('trials')
    with op.batch_alter_table('comparisons', schema=None) as batch_op:
        batch_op.drop_index('ix_comparisons_tenant_created')

    op.drop_table('comparisons')

