"""Issue 6, 2a and 2f: the scheduler actor killed (kill -9) or restarted while jobs run and wait."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from conductor import jobs
from conductor.scheduler import handle as scheduler
from conductor.service import JobService
from tests.faults.conftest import actor_pid, kill9, marked_script, queue_unacknowledged, runs_of, wait_until
from tests.helpers import pid_alive, ray_used_by_node, spec

pytestmark = pytest.mark.ray

CONCURRENCY, QUEUED = 8, 100


def _supervise(handle, timeout_s: float = 60) -> dict:  # noqa: ANN001
    """What ``conductor up`` does every 2 s: call the actor's idempotent start until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return scheduler.start(handle, timeout_s=30)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _running_ids(service: JobService, ids: list[int]) -> list[int]:
    return [job.id for job in service.repository.get_many(ids) if job.state is jobs.JobState.RUNNING]


@pytest.mark.timeout(150)
def test_scheduler_killed_with_jobs_queued_and_running(settings_factory, backend, scheduler_factory,
                                                       tmp_path: Path) -> None:
    """2a: nothing lost, nothing that may not be requeued runs twice, allocations and Ray back to zero."""
    settings = settings_factory(backend, worker_concurrency=CONCURRENCY)
    service = JobService.from_settings(settings)
    handle = scheduler_factory(settings)
    hold = tmp_path / "hold"
    hold.touch()
    script = marked_script(tmp_path, hold)
    specs = [spec(script, name=f"j{i}", requeue=bool(i % 2), working_dir=str(tmp_path))
             for i in range(CONCURRENCY + QUEUED)]
    ids = [job.id for job in service.submit_many(specs)]
    may_requeue = {job_id: s.requeue for job_id, s in zip(ids, specs)}
    running = wait_until(lambda: (r := _running_ids(service, ids)) and len(r) == CONCURRENCY
                         and all(runs_of(tmp_path, i) for i in r) and r, 60, "8 scripts running")
    first_attempts = {i: runs_of(tmp_path, i)[0] for i in running}
    assert sum(1 for i in ids if service.get(i).state is jobs.JobState.PENDING) == QUEUED

    kill9(actor_pid(handle))
    _supervise(handle)  # Ray restarted the actor (max_restarts=-1); start() reconciles

    for job_id, (_, script_pid, _) in first_attempts.items():  # reaped before being requeued
        assert not pid_alive(script_pid), f"job {job_id}'s first attempt still runs"
    for job_id in running:
        job = service.get(job_id)
        if may_requeue[job_id]:
            assert job.restart_count == 1 and job.state in (jobs.JobState.PENDING, jobs.JobState.RUNNING), job
        else:
            assert job.state is jobs.JobState.NODE_FAIL and "scheduler restarted" in job.reason_message, job
    hold.unlink()
    wait_until(lambda: all(j.state.is_terminal() for j in service.repository.get_many(ids)), 90,
               "every job to end")

    ended = {job.id: job for job in service.repository.get_many(ids)}
    assert sorted(ended) == ids, "no job lost"
    for job_id, job in ended.items():
        runs = runs_of(tmp_path, job_id)
        if job_id in running and not may_requeue[job_id]:
            assert job.state is jobs.JobState.NODE_FAIL and len(runs) == 1, (job, runs)
        else:
            assert job.state is jobs.JobState.COMPLETED, job
            assert [r[0] for r in runs] == list(range(job.restart_count + 1)), (job, runs)
            assert (not may_requeue[job_id]) <= (len(runs) == 1), "ran twice though it may not be requeued"
    assert service.repository.unreleased_allocations() == []
    wait_until(lambda: queue_unacknowledged(settings) == 0, 15, "every queue entry to be acknowledged")
    wait_until(lambda: all(u.cpus == 0 and u.memory_mb == 0 for u in ray_used_by_node().values()), 15,
               "Ray's used resources to return to zero")


@pytest.mark.timeout(90)
def test_scheduler_restart_ends_running_attempts_which_are_requeued(settings_factory, scheduler_factory,
                                                                    tmp_path: Path) -> None:
    """2f: a restarted scheduler cannot adopt running tasks; Ray ends them with their owner.

    Today a restart (an upgrade: the actor replaced) ends every running attempt: Ray kills
    the worker of each task whose owner died, and the new actor requeues the jobs (or ends
    them NODE_FAIL when they may not be requeued).  docs/RELIABILITY.md says what would lift it.
    """
    settings = settings_factory("postgres-redis", worker_concurrency=4)
    service = JobService.from_settings(settings)
    handle = scheduler_factory(settings)
    hold = tmp_path / "hold"
    hold.touch()
    script = marked_script(tmp_path, hold)
    again = service.submit(spec(script, name="again", working_dir=str(tmp_path))).id
    once = service.submit(spec(script, name="once", requeue=False, working_dir=str(tmp_path))).id
    wait_until(lambda: runs_of(tmp_path, again) and runs_of(tmp_path, once), 30, "both scripts running")
    (_, again_pid, again_worker), (_, once_pid, once_worker) = runs_of(tmp_path, again)[0], runs_of(tmp_path, once)[0]

    ray.kill(handle, no_restart=False)  # the actor process replaced, as for an upgrade
    # Ray's ownership: the tasks' owner is gone, so their workers are killed, new actor or not.
    wait_until(lambda: not pid_alive(again_worker) and not pid_alive(once_worker), 30,
               "Ray to kill the workers of the dead owner's tasks")
    _supervise(handle)

    assert not pid_alive(again_pid) and not pid_alive(once_pid), "no script outlives its attempt"
    failed = service.get(once)
    assert failed.state is jobs.JobState.NODE_FAIL and "scheduler restarted" in failed.reason_message
    hold.unlink()
    done = wait_until(lambda: (j := service.get(again)).state.is_terminal() and j, 30, "the requeued job to end")
    assert (done.state, done.restart_count) == (jobs.JobState.COMPLETED, 1)
    assert [r[0] for r in runs_of(tmp_path, again)] == [0, 1] and len(runs_of(tmp_path, once)) == 1
    assert service.repository.unreleased_allocations() == []
