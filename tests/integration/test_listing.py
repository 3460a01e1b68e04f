"""Listing jobs (squeue's and sacct's reads) on PostgreSQL and on SQLite: filters, time windows, pages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from sqlalchemy import Engine, update

from conductor import jobs
from conductor.config import Settings
from conductor.db.listing import MAX_LIMIT, JobFilter, JobListing
from conductor.db.models import JobRow
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine
from conductor.exceptions import DatabaseUnavailable
from conductor.service import JobService
from tests.helpers import allocation, spec

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(settings: Settings, service: JobService) -> Iterator[Engine]:
    """A second engine on the test database, to set times the tests can reason about."""
    eng = make_engine(settings.effective_database_url)
    yield eng
    eng.dispose()


def _submit(service: JobService, **fields: object) -> int:
    return service.submit(spec("#!/bin/bash\ntrue\n", **fields)).id


def _run(repository: JobRepository, job_id: int) -> None:
    assert repository.start_jobs([allocation(job_id, 1, 0)]) == {job_id}


def _finish(repository: JobRepository, job_id: int, state: jobs.JobState = jobs.JobState.COMPLETED) -> None:
    _run(repository, job_id)
    assert repository.finish_job(job_id, jobs.Ending(state, jobs.Reason.NONE, exit_code=0))


def _set_times(engine: Engine, job_id: int, **times: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(update(JobRow).where(JobRow.id == job_id).values(**times))


def _ids(service: JobService, job_filter: JobFilter, **page: int) -> list[int]:
    found, _ = service.list_jobs(job_filter, **page)
    return [job.id for job in found]


def test_each_filter_narrows_and_values_of_one_filter_are_ored(service: JobService,
                                                              repository: JobRepository) -> None:
    a = _submit(service, user="alice", account="phys", partition="gpu", name="train")
    b = _submit(service, user="bob", account="chem", partition="cpu", name="train")
    c = _submit(service, user="alice", account="chem", partition="cpu", name="eval")
    _run(repository, b)
    _finish(repository, c, jobs.JobState.FAILED)
    assert _ids(service, JobFilter()) == [a, b, c]
    assert _ids(service, JobFilter(states=[jobs.JobState.PENDING, jobs.JobState.RUNNING])) == [a, b]
    assert _ids(service, JobFilter(states=[jobs.JobState.FAILED])) == [c]
    assert _ids(service, JobFilter(users=["alice"])) == [a, c]
    assert _ids(service, JobFilter(accounts=["chem"], partitions=["cpu"])) == [b, c]
    assert _ids(service, JobFilter(names=["train"], users=["bob", "carol"])) == [b]
    assert _ids(service, JobFilter(ids=[c, a, 999])) == [a, c]
    assert _ids(service, JobFilter(users=["alice"], states=[jobs.JobState.RUNNING])) == []


def test_jobs_come_back_whole(service: JobService, repository: JobRepository) -> None:
    job_id = _submit(service, user="alice", cpus_per_task=3, memory_per_node_mb=2048)
    _finish(repository, job_id)
    [job], next_cursor = service.list_jobs(JobFilter(ids=[job_id]))
    assert next_cursor is None
    assert job == service.get(job_id)
    assert (job.state, job.node_name, job.spec.per_node.cpus) == (jobs.JobState.COMPLETED, "n1", 3)
    assert job.end_time is not None and job.end_time.tzinfo is not None


def test_submit_window_is_compared_in_utc(service: JobService, engine: Engine) -> None:
    ids = [_submit(service) for _ in range(3)]
    for index, job_id in enumerate(ids):
        _set_times(engine, job_id, submit_time=T0 + timedelta(hours=index))
    plus_five = timezone(timedelta(hours=5))
    assert _ids(service, JobFilter(submitted_since=(T0 + timedelta(hours=1)).astimezone(plus_five))) == ids[1:]
    assert _ids(service, JobFilter(submitted_until=T0 + timedelta(minutes=59))) == ids[:1]
    naive_utc = (T0 + timedelta(hours=1)).replace(tzinfo=None)
    assert _ids(service, JobFilter(submitted_since=naive_utc, submitted_until=naive_utc)) == ids[1:2]


def test_end_window_lists_only_jobs_that_ended_in_it(service: JobService, repository: JobRepository,
                                                    engine: Engine) -> None:
    pending, running, early, late = (_submit(service) for _ in range(4))
    _run(repository, running)
    _finish(repository, early)
    _finish(repository, late, jobs.JobState.TIMEOUT)
    _set_times(engine, early, end_time=T0)
    _set_times(engine, late, end_time=T0 + timedelta(days=1))
    assert _ids(service, JobFilter(ended_since=T0 - timedelta(days=365))) == [early, late]
    assert _ids(service, JobFilter(ended_since=T0 + timedelta(seconds=1))) == [late]
    assert _ids(service, JobFilter(ended_until=T0)) == [early]
    assert pending not in _ids(service, JobFilter(ended_until=T0 + timedelta(days=9)))


def test_pages_follow_the_cursor_in_id_order_without_repeats(service: JobService) -> None:
    ids = [_submit(service, user="alice" if n % 2 else "bob") for n in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        found, cursor = service.list_jobs(JobFilter(), cursor=cursor, limit=3)
        seen += [job.id for job in found]
        pages += 1
        if cursor is None:
            break
        assert cursor == seen[-1]
    assert (seen, pages) == (ids, 3)
    alices = [job_id for n, job_id in enumerate(ids) if n % 2]
    first, cursor = service.list_jobs(JobFilter(users=["alice"]), limit=2)
    rest, last = service.list_jobs(JobFilter(users=["alice"]), cursor=cursor, limit=2)
    assert ([j.id for j in first + rest], last) == (alices, None)
    assert service.list_jobs(JobFilter(), limit=7) == (service.list_jobs(JobFilter(), limit=7)[0], None)


def test_limit_is_bounded(service: JobService) -> None:
    for limit in (0, MAX_LIMIT + 1):
        with pytest.raises(ValueError, match="limit must be between 1 and"):
            service.list_jobs(JobFilter(), limit=limit)


def test_an_unreachable_database_is_reported_unavailable() -> None:
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable):
        JobListing(engine).page(JobFilter())
    engine.dispose()
