"""Aggregate figures of the jobs table, for /metrics and ``conductor status``: GROUP BY queries, never row loads.

``totals`` reads job_totals, the jobs and CPU-seconds (CPUs x elapsed) per (state, account) that
triggers on the jobs table keep in the transaction of each change (migration 0010): how many jobs
were submitted, how many are in each terminal state, and the CPU-seconds of the jobs that ran and
ended, per account, in a few rows however many jobs the table holds.  Derived from the rows, these counters are the same whichever
process restarted; they go down only if a row leaves a terminal state (``conductor requeue`` of an
ended job) or is deleted, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, select

from conductor import jobs
from conductor.db.errors import translate_errors
from conductor.db.models import JobRow, JobTotalRow
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

    def totals(self) -> Totals:
        with translate_errors(), self._sessions() as session:
            rows = session.execute(select(JobTotalRow.state, JobTotalRow.account, JobTotalRow.jobs,
                                          JobTotalRow.cpu_seconds).where(JobTotalRow.jobs > 0)).all()
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
