"""dependencies on arrays: jobs.kill_on_invalid_dependency; indexes (array_job_id, state) and (array_job_id, array_task_id)

The two indexes replace ix_jobs_array_job_id (each begins with array_job_id): a dependency on a
whole array asks which states its tasks are in with index probes, and one on a task (40_2,
aftercorr) looks that task up, so neither reads every task of the array.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 06:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('kill_on_invalid_dependency', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_index('ix_jobs_array_state', ['array_job_id', 'state'], unique=False)
        batch.create_index('ix_jobs_array_task', ['array_job_id', 'array_task_id'], unique=False)
        batch.drop_index('ix_jobs_array_job_id')


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.create_index('ix_jobs_array_job_id', ['array_job_id'], unique=False)
        batch.drop_index('ix_jobs_array_task')
        batch.drop_index('ix_jobs_array_state')
        batch.drop_column('kill_on_invalid_dependency')
