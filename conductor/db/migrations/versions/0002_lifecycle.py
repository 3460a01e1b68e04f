"""job lifecycle: cancel intent, end-time index for history, hold, begin time, dependencies, arrays; queue entry operations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('hold', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('begin_time', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dependency', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('array_job_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('array_task_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('array_max_running', sa.Integer(), nullable=True))
        batch_op.create_index('ix_jobs_array_job_id', ['array_job_id'], unique=False)
        batch_op.create_index('ix_jobs_end_time', ['end_time'], unique=False)
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('op', sa.String(length=16), nullable=False, server_default='submit'))
        batch_op.add_column(sa.Column('arg', sa.String(length=64), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_column('arg')
        batch_op.drop_column('op')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_end_time')
        batch_op.drop_index('ix_jobs_array_job_id')
        for column in ('array_max_running', 'array_task_id', 'array_job_id', 'dependency', 'begin_time', 'hold',
                       'cancel_requested'):
            batch_op.drop_column(column)
