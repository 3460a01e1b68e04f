"""Listing jobs: filtered, ordered by id, cursor-paginated reads (squeue's and sacct's queries).

One SQLAlchemy statement serves SQLite and PostgreSQL.  Times are compared in UTC: SQLite
stores ``DateTime(timezone=True)`` values as naive UTC text, so every bound is converted to
UTC before it is bound (a naive bound is taken as UTC already).  The cursor is the last job
id a caller has seen; the next page holds the jobs with larger ids, so a page never repeats
or skips a job that existed when the first page was read, whatever is submitted meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import Engine, Select, and_, or_, select

from conductor import jobs
from conductor.db.models import JobRow
from conductor.db.errors import translate_errors
from conductor.db.repository import job_from_row
from conductor.db.session import make_sessionmaker

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list.  Empty tuples and None match everything; fields are ANDed, values ORed."""

    ids: Sequence[int] = ()
    states: Sequence[jobs.JobState] = ()
    users: Sequence[str] = ()
    accounts: Sequence[str] = ()
    partitions: Sequence[str] = ()
    names: Sequence[str] = ()
    submitted_since: datetime | None = None
    submitted_until: datetime | None = None
    #: Only jobs that ended in this window (and so have an end time): sacct's history.
    ended_since: datetime | None = None
    ended_until: datetime | None = None
    #: Jobs as Slurm's commands name them (squeue -j, sacct -j): ``42`` is job 42 and, when 42 is an
    #: array's id, every task of it; ``40_2`` is that task alone.  ORed with each other, ANDed with the rest.
    refs: Sequence[jobs.JobRef] = ()


@dataclass(frozen=True)
class Page:
    """One page of jobs in id order; ``next_cursor`` is None on the last page."""

    jobs: list[jobs.Job]
    next_cursor: int | None


class JobListing:
    """Read-only listing queries over one engine."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = make_sessionmaker(engine)

    def page(self, job_filter: JobFilter, *, cursor: int | None = None, limit: int = DEFAULT_LIMIT) -> Page:
        """Jobs matching ``job_filter`` with id > ``cursor``, at most ``limit`` (1..MAX_LIMIT) of them."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        query = filtered(select(JobRow), job_filter)
        if cursor is not None:
            query = query.where(JobRow.id > cursor)
        query = query.order_by(JobRow.id).limit(limit + 1)  # one more row says whether a next page exists
        with translate_errors(), self._sessions() as session:
            rows = session.scalars(query).all()
            page = [job_from_row(row) for row in rows[:limit]]
        next_cursor = page[-1].id if len(rows) > limit else None
        return Page(page, next_cursor)


def filtered(query: Select, job_filter: JobFilter) -> Select:
    """``query`` over JobRow narrowed by every criterion ``job_filter`` sets."""
    f = job_filter
    for column, values in ((JobRow.id, f.ids), (JobRow.user, f.users), (JobRow.account, f.accounts),
                           (JobRow.partition, f.partitions), (JobRow.name, f.names),
                           (JobRow.state, [jobs.JobState(state).value for state in f.states])):
        if values:
            query = query.where(column.in_(sorted(set(values))))
    if f.refs:
        plain = sorted({ref.job_id for ref in f.refs if ref.task_id is None})
        tasks = sorted({(ref.job_id, ref.task_id) for ref in f.refs if ref.task_id is not None})
        query = query.where(or_(JobRow.id.in_(plain), JobRow.array_job_id.in_(plain),
                                *(and_(JobRow.array_job_id == array, JobRow.array_task_id == task)
                                  for array, task in tasks)))
    for column, since, until in ((JobRow.submit_time, f.submitted_since, f.submitted_until),
                                 (JobRow.end_time, f.ended_since, f.ended_until)):
        if since is not None:
            query = query.where(column >= _utc(since))
        if until is not None:
            query = query.where(column <= _utc(until))
    return query


def _utc(value: datetime) -> datetime:
    """The bound in UTC; naive values are taken as UTC (that is how conductor stores times)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
