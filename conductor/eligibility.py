"""Which pending jobs may not start yet whatever the resources: held, --begin, dependencies.

The referenced jobs are read in one repository call per pass (``JobRepository.dependency_facts``),
only when a pending job has a dependency.  A whole array costs a few index probes however many
tasks it has; a single task or an ``aftercorr`` counterpart one index lookup each; singleton one
query per singleton job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

from conductor import dependencies, jobs, policy
from conductor.db.repository import JobRepository

Pending = tuple[jobs.Job, "dependencies.Dependency | None"]


@dataclass
class Eligibility:
    """One pass's answer."""

    reasons: dict[int, jobs.Reason] = field(default_factory=dict)  #: job id -> why it may not start
    next_begin: datetime | None = None  #: the earliest --begin still ahead (wake up then)
    #: Jobs ended CANCELLED (reason DependencyNeverSatisfied) because of --kill-on-invalid-dep:
    #: no longer pending; the scheduler should forget them and acknowledge their entries.
    cancelled: list[int] = field(default_factory=list)


def blocked(pending: Sequence[Pending], repo: JobRepository,
            now: datetime) -> tuple[dict[int, jobs.Reason], datetime | None]:
    """job id -> reason for each blocked job, and the earliest --begin still ahead (to wake up then).

    A job whose dependency can never be met and that asked for --kill-on-invalid-dep is
    cancelled here (see :func:`check`, which also says which).
    """
    result = check(pending, repo, now)
    return result.reasons, result.next_begin


def check(pending: Sequence[Pending], repo: JobRepository, now: datetime) -> Eligibility:
    """Evaluate holds, --begin and dependencies of the pending jobs; cancel the invalid ones that asked."""
    facts = facts_for(((dep, job.spec.array_task_id) for job, dep in pending if dep is not None), repo)
    result = Eligibility()
    doomed: list[int] = []
    for job, dependency in pending:
        begin = job.spec.begin_time
        if begin is not None and begin > now:
            result.next_begin = begin if result.next_begin is None else min(result.next_begin, begin)
        verdict = None
        if dependency is not None:
            verdict = dependencies.evaluate(dependency, facts, task_id=job.spec.array_task_id,
                                            singleton_clear=_singleton_clear(job, dependency, repo))
            if verdict is dependencies.Verdict.NEVER and job.spec.kill_on_invalid_dependency:
                doomed.append(job.id)
        reason = policy.blocked_reason(hold=job.spec.hold, begin_time=begin, now=now, dependency=verdict)
        if reason:
            result.reasons[job.id] = reason
    if doomed:
        result.cancelled = repo.cancel_invalid_dependents(doomed)
    return result


def facts_for(dependencies_of: Iterable[tuple[dependencies.Dependency, int | None]],
              repo: JobRepository) -> dependencies.Facts:
    """One read of everything the given (dependency, dependent's task id) pairs refer to."""
    job_ids: set[int] = set()
    tasks: set[tuple[int, int]] = set()
    for dependency, task_id in dependencies_of:
        job_ids |= dependency.job_ids
        tasks |= dependencies.needed_tasks(dependency, task_id)
    if not job_ids:
        return dependencies.Facts()
    return repo.dependency_facts(job_ids, tasks)


def describe(found: Sequence[jobs.Job], repo: JobRepository) -> dict[int, str]:
    """job id -> the dependency as Slurm shows it, for the jobs that still wait for one.

    A job that has started had its dependency fulfilled, and Slurm shows none then.
    """
    waiting = [(job, dependency) for job in found if job.start_time is None
               for dependency in [_parsed(job.spec.dependency)] if dependency is not None]
    if not waiting:
        return {}
    facts = facts_for(((dep, job.spec.array_task_id) for job, dep in waiting), repo)
    shown = {}
    for job, dependency in waiting:
        clear = job.state is not jobs.JobState.PENDING or _singleton_clear(job, dependency, repo)
        text = dependencies.describe(dependency, facts, task_id=job.spec.array_task_id, singleton_clear=clear)
        if text:
            shown[job.id] = text
    return shown


def _parsed(text: str | None) -> dependencies.Dependency | None:
    """A stored dependency, or None (also for text no parser accepts: a row written behind the API's back)."""
    try:
        return dependencies.parse(text) if text else None
    except ValueError:
        return None


def _singleton_clear(job: jobs.Job, dependency: dependencies.Dependency, repo: JobRepository) -> bool:
    return not dependency.singleton or not repo.has_earlier_active_namesake(job)
