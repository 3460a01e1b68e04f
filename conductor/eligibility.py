"""Which pending jobs may not start yet whatever the resources: held, --begin, dependencies."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from conductor import dependencies, jobs, policy
from conductor.db.repository import JobRepository


def blocked(pending: Sequence[tuple[jobs.Job, dependencies.Dependency | None]], repo: JobRepository,
            now: datetime) -> tuple[dict[int, str], datetime | None]:
    """job id -> reason for each blocked job, and the earliest --begin still ahead (to wake up then).

    The referenced jobs' states are read in one query per pass, and only when a pending job
    has a dependency; singleton costs one query per singleton job.
    """
    with_deps = [dep for _job, dep in pending if dep is not None]
    states = repo.states_of({i for dep in with_deps for i in dep.job_ids}) if with_deps else {}
    reasons: dict[int, str] = {}
    next_begin = None
    for job, dependency in pending:
        begin = job.spec.begin_time
        if begin is not None and begin > now:
            next_begin = begin if next_begin is None else min(next_begin, begin)
        verdict = None
        if dependency is not None:
            clear = not dependency.singleton or not repo.has_earlier_active_namesake(job)
            verdict = dependencies.evaluate(dependency, states, singleton_clear=clear)
        reason = policy.blocked_reason(hold=job.spec.hold, begin_time=begin, now=now, dependency=verdict)
        if reason:
            reasons[job.id] = reason
    return reasons, next_begin
