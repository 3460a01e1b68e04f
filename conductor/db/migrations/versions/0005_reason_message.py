"""reasons as a code and a message: jobs.reason_message; nodes.partitions

Until now a reason was one string, "Code: free text".  The code stays in ``reason`` and the
text moves to ``reason_message``, so that counting jobs by reason counts by code.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Where ": " is in ``reason``, in each dialect's words (0: nowhere).
_FIND = {"postgresql": "strpos(reason, ': ')", "sqlite": "instr(reason, ': ')"}


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('reason_message', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('nodes') as batch:
        batch.add_column(sa.Column('partitions', sa.JSON(), nullable=True))
    find = _FIND.get(op.get_bind().dialect.name, "strpos(reason, ': ')")
    op.execute(f"UPDATE jobs SET reason_message = substr(reason, {find} + 2), reason = substr(reason, 1, {find} - 1) "
               f"WHERE {find} > 0")


def downgrade() -> None:
    op.execute("UPDATE jobs SET reason = reason || ': ' || reason_message WHERE reason_message <> ''")
    with op.batch_alter_table('nodes') as batch:
        batch.drop_column('partitions')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('reason_message')
