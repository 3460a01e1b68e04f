"""job_totals: jobs and CPU-seconds per (state, account), kept by triggers on jobs

/metrics reports every job ever submitted, the ended ones by state and the CPU-seconds of each
account.  A GROUP BY over the jobs table gave them, and cost 1.4 s on SQLite with a million
finished jobs, at every scrape.  The triggers below keep the same sums as rows are inserted,
change state, account or times, and are deleted, in the same transaction as the change: the
table is exact whenever a transaction can see it, so /metrics reads a few rows.

  * SQLite: one row-level trigger per kind of change (an UPDATE only when a column the sums
    depend on changed).
  * PostgreSQL: statement-level triggers over the transition tables, so a statement that
    changes many jobs (a batch submit, a mass cancel) adds one row per (state, account), not
    one update of the same totals row per job; TRUNCATE empties the totals.

CPU-seconds are CPUs (cpus_per_task x ntasks_per_node x nodes) x (end_time - start_time) of a
row with both times, 0 otherwise: what the GROUP BY computed.

On SQLite, a later migration that rebuilds the jobs table (batch_alter_table copies it into a
new table) drops these triggers with it: such a migration must create them again
(``create_triggers``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

#: Columns whose change moves a job between totals rows or changes its CPU-seconds.
_COUNTED = ("state", "account", "start_time", "end_time", "cpus_per_task", "ntasks_per_node", "nodes")


def _sqlite_cpu_s(row: str) -> str:
    return (f"COALESCE({row}.cpus_per_task * {row}.ntasks_per_node * {row}.nodes"
            f" * (julianday({row}.end_time) - julianday({row}.start_time)) * 86400.0, 0.0)")


def _sqlite_add(row: str, sign: str) -> str:
    return (f"INSERT OR IGNORE INTO job_totals (state, account, jobs, cpu_seconds) VALUES ({row}.state, {row}.account, 0, 0);"
            f" UPDATE job_totals SET jobs = jobs {sign} 1, cpu_seconds = cpu_seconds {sign} {_sqlite_cpu_s(row)}"
            f" WHERE state = {row}.state AND account = {row}.account;")


_PG_CPU_S = ("COALESCE(cpus_per_task * ntasks_per_node * nodes"
             " * EXTRACT(EPOCH FROM end_time - start_time)::double precision, 0)")

_PG_NEW = f"SELECT state, account, 1 AS n, {_PG_CPU_S} AS cpu_s FROM new_rows"
_PG_OLD = f"SELECT state, account, -1 AS n, -{_PG_CPU_S} AS cpu_s FROM old_rows"


def _pg_function(name: str, changes: str) -> str:
    """A trigger function adding ``changes`` (rows of state, account, n, cpu_s) to job_totals."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_totals AS t (state, account, jobs, cpu_seconds)
    SELECT state, account, sum(n), sum(cpu_s) FROM ({changes}) AS changed
    GROUP BY state, account
    HAVING sum(n) <> 0 OR abs(sum(cpu_s)) > 1e-9
    ON CONFLICT (state, account) DO UPDATE
        SET jobs = t.jobs + EXCLUDED.jobs, cpu_seconds = t.cpu_seconds + EXCLUDED.cpu_seconds;
    RETURN NULL;
END $$"""


_PG_CLEAR = """
CREATE FUNCTION job_totals_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_totals;
    RETURN NULL;
END $$"""


def create_triggers() -> None:
    """The triggers that keep job_totals (see the module's text); also for a migration that rebuilds jobs."""
    if op.get_bind().dialect.name == "postgresql":
        # One function per trigger: each reads only the transition tables its trigger declares.
        op.execute(_pg_function("job_totals_insert", _PG_NEW))
        op.execute(_pg_function("job_totals_apply", f"{_PG_NEW} UNION ALL {_PG_OLD}"))
        op.execute(_pg_function("job_totals_delete", _PG_OLD))
        op.execute(_PG_CLEAR)
        op.execute("CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows"
                   " FOR EACH STATEMENT EXECUTE FUNCTION job_totals_insert()")
        op.execute("CREATE TRIGGER job_totals_update AFTER UPDATE ON jobs"
                   " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
                   " FOR EACH STATEMENT EXECUTE FUNCTION job_totals_apply()")
        op.execute("CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows"
                   " FOR EACH STATEMENT EXECUTE FUNCTION job_totals_delete()")
        op.execute("CREATE TRIGGER job_totals_truncate AFTER TRUNCATE ON jobs"
                   " FOR EACH STATEMENT EXECUTE FUNCTION job_totals_clear()")
        return
    changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in _COUNTED)
    op.execute(f"CREATE TRIGGER job_totals_insert AFTER INSERT ON jobs BEGIN {_sqlite_add('NEW', '+')} END")
    op.execute(f"CREATE TRIGGER job_totals_update AFTER UPDATE OF {', '.join(_COUNTED)} ON jobs WHEN {changed}"
               f" BEGIN {_sqlite_add('OLD', '-')} {_sqlite_add('NEW', '+')} END")
    op.execute(f"CREATE TRIGGER job_totals_delete AFTER DELETE ON jobs BEGIN {_sqlite_add('OLD', '-')} END")


def upgrade() -> None:
    op.create_table(
        'job_totals',
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('account', sa.String(length=255), nullable=False),
        sa.Column('jobs', sa.BigInteger(), nullable=False),
        sa.Column('cpu_seconds', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('state', 'account'),
    )
    cpu_s = _PG_CPU_S if op.get_bind().dialect.name == "postgresql" else _sqlite_cpu_s("jobs")
    op.execute(f"INSERT INTO job_totals (state, account, jobs, cpu_seconds)"
               f" SELECT state, account, count(*), COALESCE(sum({cpu_s}), 0) FROM jobs GROUP BY state, account")
    create_triggers()


def downgrade() -> None:
    for trigger in ("job_totals_insert", "job_totals_update", "job_totals_delete", "job_totals_truncate"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON jobs")
        elif trigger != "job_totals_truncate":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    if op.get_bind().dialect.name == "postgresql":
        for function in ("job_totals_insert", "job_totals_delete", "job_totals_apply", "job_totals_clear"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table('job_totals')
