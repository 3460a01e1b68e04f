"""sbatch's options as given: jobs.given, ntasks, memory_per_cpu_mb, export, get_user_env, open_mode,
warning_signal, exclusive, comment, command, array_spec, cluster, submit_host; SQLite ids never reused

The job's SLURM_* environment depends on which options were given (SLURM_CPUS_PER_TASK only with
-c), and scontrol/squeue show the comment, the command and the cluster.  On SQLite the jobs table
is rebuilt with AUTOINCREMENT so that ids only grow (as Slurm's do) and FIRST_JOB_ID can seed them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COLUMNS = (
    lambda: sa.Column('given', sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    lambda: sa.Column('ntasks', sa.Integer(), nullable=True),
    lambda: sa.Column('memory_per_cpu_mb', sa.BigInteger(), nullable=True),
    lambda: sa.Column('export', sa.Text(), nullable=True),
    lambda: sa.Column('get_user_env', sa.Boolean(), nullable=False, server_default=sa.false()),
    lambda: sa.Column('open_mode', sa.String(length=16), nullable=True),
    lambda: sa.Column('warning_signal', sa.String(length=32), nullable=True),
    lambda: sa.Column('exclusive', sa.Boolean(), nullable=False, server_default=sa.false()),
    lambda: sa.Column('comment', sa.Text(), nullable=True),
    lambda: sa.Column('command', sa.Text(), nullable=True),
    lambda: sa.Column('array_spec', sa.Text(), nullable=True),
    lambda: sa.Column('cluster', sa.String(length=255), nullable=False, server_default=''),
    lambda: sa.Column('submit_host', sa.String(length=255), nullable=False, server_default=''),
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    options = {"recreate": "always", "table_kwargs": {"sqlite_autoincrement": True}} if sqlite else {}
    with op.batch_alter_table('jobs', **options) as batch:
        for column in _COLUMNS:
            batch.add_column(column())


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column().name)
