"""Aggregate figures of the jobs table, for /metrics and ``conductor status``: GROUP BY queries, never row loads.

``totals`` is one pass over the jobs table grouped by (state, account): how many jobs were
submitted, how many are in each terminal state, and the CPU-seconds (CPUs x elapsed) of the jobs
that ran and ended, per account.  Derived from the rows, these counters are the same whichever
process restarted; they go down only if a row leaves a terminal state (``conductor requeue`` of an
ended job) or is deleted, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, Float, cast, func, select

from conductor import jobs
from conductor.db.errors import translate_errors
from conductor.db.models import JobRow
from conductor.db.session import make_sessionmaker


@dataclass(frozen=True)
class Totals:
    submitted: int
    ended: dict[str, int]  #: terminal state -> jobs
    cpu_seconds: dict[str, float]  #: account -> CPU-seconds of jobs that ran and ended


@dataclass(frozen=True)
class OldestPending:
    job_id: int
    user: str
    submit_time: datetime


class JobStats:
    """Read-only aggregates over one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = make_sessionmaker(engine)

    def _elapsed_s(self):  # noqa: ANN202 - an SQL expression
        if self._engine.dialect.name == "postgresql":
            return func.extract("epoch", JobRow.end_time - JobRow.start_time)
        # SQLite keeps these as UTC text: julianday() reads it; days -> seconds.
        return (func.julianday(JobRow.end_time) - func.julianday(JobRow.start_time)) * 86400.0

    def totals(self) -> Totals:
        cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node * JobRow.nodes
        ran = JobRow.start_time.is_not(None) & JobRow.end_time.is_not(None)
        used = func.sum(cast(cpus, Float) * self._elapsed_s()).filter(ran)
        with translate_errors(), self._sessions() as session:
            rows = session.execute(select(JobRow.state, JobRow.account, func.count(), used)
                                   .group_by(JobRow.state, JobRow.account)).all()
        submitted, ended, cpu_seconds = 0, {}, {}
        terminal = {state.value for state in jobs.TERMINAL_STATES}
        for state, account, count, seconds in rows:
            submitted += count
            if state in terminal:
                ended[state] = ended.get(state, 0) + count
                cpu_seconds[account] = cpu_seconds.get(account, 0.0) + max(0.0, float(seconds or 0.0))
        return Totals(submitted, ended, cpu_seconds)

    def oldest_pending(self) -> OldestPending | None:
        """The pending job submitted first (ids only grow, so the smallest pending id), or None."""
        with translate_errors(), self._sessions() as session:
            row = session.execute(select(JobRow.id, JobRow.user, JobRow.submit_time)
                                  .where(JobRow.state == jobs.JobState.PENDING.value)
                                  .order_by(JobRow.id).limit(1)).first()
        if row is None:
            return None
        submitted = row.submit_time if row.submit_time.tzinfo else row.submit_time.replace(tzinfo=timezone.utc)
        return OldestPending(row.id, row.user, submitted)
