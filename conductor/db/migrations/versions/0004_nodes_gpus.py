"""multi-node jobs and GPUs: jobs.nodes, jobs.gpus_per_node, jobs.node_list, allocated_gpus

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:20:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('nodes', sa.Integer(), nullable=False, server_default='1'))
        batch.add_column(sa.Column('gpus_per_node', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('node_list', sa.Text(), nullable=True))
    with op.batch_alter_table('resource_allocations') as batch:
        batch.add_column(sa.Column('allocated_gpus', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('resource_allocations') as batch:
        batch.drop_column('allocated_gpus')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('node_list')
        batch.drop_column('gpus_per_node')
        batch.drop_column('nodes')
