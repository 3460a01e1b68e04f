"""initial schema: jobs, resource_allocations, queue_entries, nodes

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 01:09:02.614514
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('account', sa.String(length=255), nullable=False),
    sa.Column('partition', sa.String(length=255), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('argv', sa.JSON(), nullable=False),
    sa.Column('working_dir', sa.Text(), nullable=False),
    sa.Column('environment', sa.JSON(), nullable=False),
    sa.Column('cpus_per_task', sa.Integer(), nullable=False),
    sa.Column('ntasks_per_node', sa.Integer(), nullable=False),
    sa.Column('memory_per_node_mb', sa.BigInteger(), nullable=False),
    sa.Column('time_limit_s', sa.Integer(), nullable=True),
    sa.Column('priority', sa.BigInteger(), nullable=False),
    sa.Column('nice', sa.Integer(), nullable=False),
    sa.Column('requeue', sa.Boolean(), nullable=False),
    sa.Column('restart_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('signal', sa.Integer(), nullable=True),
    sa.Column('submit_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('node_name', sa.String(length=255), nullable=True),
    sa.Column('stdout_pattern', sa.Text(), nullable=True),
    sa.Column('stderr_pattern', sa.Text(), nullable=True),
    sa.Column('stdout_path', sa.Text(), nullable=False),
    sa.Column('stderr_path', sa.Text(), nullable=False),
    sa.Column('cpu_time_user_s', sa.Float(), nullable=True),
    sa.Column('cpu_time_system_s', sa.Float(), nullable=True),
    sa.Column('max_rss_kb', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_state', ['state'], unique=False)

    op.create_table('nodes',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('ray_node_id', sa.String(length=64), nullable=False),
    sa.Column('total_cpus', sa.Integer(), nullable=False),
    sa.Column('total_memory_mb', sa.BigInteger(), nullable=False),
    sa.Column('total_gpus', sa.Integer(), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('alive', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_entries_delivered', ['delivered'], unique=False)

    op.create_table('resource_allocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('node_name', sa.String(length=255), nullable=False),
    sa.Column('ray_node_id', sa.String(length=64), nullable=False),
    sa.Column('allocated_cpus', sa.Integer(), nullable=False),
    sa.Column('allocated_memory_mb', sa.BigInteger(), nullable=False),
    sa.Column('released', sa.Boolean(), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('resource_allocations', schema=None) as batch_op:
        batch_op.create_index('ix_resource_allocations_job_id', ['job_id'], unique=False)
        batch_op.create_index('ix_resource_allocations_released', ['released'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('resource_allocations', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_allocations_released')
        batch_op.drop_index('ix_resource_allocations_job_id')

    op.drop_table('resource_allocations')
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_entries_delivered')

    op.drop_table('queue_entries')
    op.drop_table('nodes')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state')

    op.drop_table('jobs')
