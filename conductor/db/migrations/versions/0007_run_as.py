"""jobs run as their submitters: jobs.run_as, users.unix_user

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('run_as', sa.String(255), nullable=False, server_default=''))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('unix_user', sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('unix_user')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('run_as')
