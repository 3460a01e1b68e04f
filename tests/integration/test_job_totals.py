"""job_totals, which /metrics reads, equals a GROUP BY over every job after each kind of change, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Float, cast, func, select, update

from conductor import jobs
from conductor.db.models import JobRow
from conductor.db.repository import JobRepository
from conductor.service import JobService
from tests.helpers import allocation, spec


def _scanned(repository: JobRepository) -> tuple[int, dict[str, int], dict[str, float]]:
    """The totals as a scan of the jobs table computes them (what /metrics ran before job_totals)."""
    engine = repository.engine
    if engine.dialect.name == "postgresql":
        elapsed = func.extract("epoch", JobRow.end_time - JobRow.start_time)
    else:
        elapsed = (func.julianday(JobRow.end_time) - func.julianday(JobRow.start_time)) * 86400.0
    cpus = JobRow.cpus_per_task * JobRow.ntasks_per_node * JobRow.nodes
    ran = JobRow.start_time.is_not(None) & JobRow.end_time.is_not(None)
    used = func.sum(cast(cpus, Float) * elapsed).filter(ran)
    with engine.connect() as connection:
        rows = connection.execute(select(JobRow.state, JobRow.account, func.count(), used)
                                  .group_by(JobRow.state, JobRow.account)).all()
    terminal = {state.value for state in jobs.TERMINAL_STATES}
    submitted, ended, cpu_seconds = 0, {}, {}
    for state, account, count, seconds in rows:
        submitted += count
        if state in terminal:
            ended[state] = ended.get(state, 0) + count
            cpu_seconds[account] = cpu_seconds.get(account, 0.0) + max(0.0, float(seconds or 0.0))
    return submitted, ended, cpu_seconds


def _assert_same(service: JobService, repository: JobRepository) -> None:
    kept = service.totals()
    submitted, ended, cpu_seconds = _scanned(repository)
    assert (kept.submitted, kept.ended) == (submitted, ended)
    assert kept.cpu_seconds.keys() == cpu_seconds.keys()
    for account, seconds in cpu_seconds.items():
        assert kept.cpu_seconds[account] == pytest.approx(seconds, rel=1e-6, abs=1e-6), account


def test_job_totals_follow_every_change_of_the_jobs_table(service: JobService, repository: JobRepository) -> None:
    _assert_same(service, repository)
    batch = repository.add_jobs([spec("true", account=account, cpus_per_task=cpus, ntasks_per_node=2, nodes=nodes)
                                 for account, cpus, nodes in [("phys", 1, 1), ("phys", 2, 1), ("chem", 4, 2),
                                                              ("", 1, 1), ("chem", 1, 1), ("phys", 3, 1)]])
    single = repository.add_job(spec("true", account="bio"))
    ids = [job.id for job in batch] + [single.id]
    _assert_same(service, repository)
    assert service.totals().submitted == 7

    started = repository.start_jobs([allocation(job_id, 2, 100) for job_id in ids[:5]])
    assert started == set(ids[:5])
    repository.set_pending_reasons({jobs.Reason.PRIORITY: ids[5:]})  # a change the totals do not count
    _assert_same(service, repository)

    repository.finish_jobs([(ids[0], jobs.Ending(jobs.JobState.COMPLETED, exit_code=0)),
                            (ids[1], jobs.Ending(jobs.JobState.FAILED, jobs.Reason.NON_ZERO_EXIT, exit_code=3))])
    assert repository.finish_job(ids[2], jobs.Ending(jobs.JobState.TIMEOUT, jobs.Reason.TIME_LIMIT))
    with repository.engine.begin() as connection:  # ran an hour: CPU-seconds that cannot round away
        for job in repository.get_many(ids[:3]):
            connection.execute(update(JobRow).where(JobRow.id == job.id)
                               .values(start_time=job.end_time - timedelta(hours=1)))
    _assert_same(service, repository)
    assert service.totals().ended == {"COMPLETED": 1, "FAILED": 1, "TIMEOUT": 1}
    assert service.totals().cpu_seconds["chem"] == pytest.approx(4 * 2 * 2 * 3600, rel=1e-3)

    assert repository.requeue_ended([ids[1]]) == [ids[1]]  # FAILED -> PENDING: its counts move back
    assert repository.cancel_pending([ids[5]]) == [ids[5]]
    assert repository.delete_pending_many([ids[6]]) == 1
    _assert_same(service, repository)
    totals = service.totals()
    assert totals.submitted == 6 and totals.ended == {"COMPLETED": 1, "TIMEOUT": 1, "CANCELLED": 1}
    assert "bio" not in totals.cpu_seconds


def test_job_totals_of_a_large_batch_and_a_mass_cancel(service: JobService, repository: JobRepository) -> None:
    """One statement over many rows (PostgreSQL adds it up once per statement, SQLite per row)."""
    found = repository.add_jobs([spec("true", account=f"a{index % 3}") for index in range(3000)])
    assert len(repository.cancel_pending([job.id for job in found[:2500]])) == 2500
    _assert_same(service, repository)
    assert service.totals().ended == {"CANCELLED": 2500} and service.totals().submitted == 3000
