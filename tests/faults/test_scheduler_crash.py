"""Issue 6, 2a and 2f: the scheduler actor killed (kill -9) or restarted while jobs run and wait.

Since issue 11 the running jobs belong to the keepers, so both now show them outliving the
scheduler: nothing is requeued or ended unasked, each script runs once (tests/faults/test_keepers.py
has the multi-node, GPU and keeper-loss cases).
"""

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
    running = wait_until(lambda: (r := _running_ids(service, ids)) and len(r) == CONCURRENCY
                         and all(runs_of(tmp_path, i) for i in r) and r, 60, "8 scripts running")
    first_attempts = {i: runs_of(tmp_path, i)[0] for i in running}
    assert sum(1 for i in ids if service.get(i).state is jobs.JobState.PENDING) == QUEUED

    kill9(actor_pid(handle))
    _supervise(handle)  # Ray restarted the actor (max_restarts=-1); start() adopts the running jobs

    for job_id, (_, script_pid, _) in first_attempts.items():  # not stopped with the scheduler
        assert pid_alive(script_pid), f"job {job_id}'s script did not outlive the scheduler"
        job = service.get(job_id)
        assert (job.state, job.restart_count) == (jobs.JobState.RUNNING, 0), job
    hold.unlink()
    wait_until(lambda: all(j.state.is_terminal() for j in service.repository.get_many(ids)), 90,
               "every job to end")

    ended = {job.id: job for job in service.repository.get_many(ids)}
    assert sorted(ended) == ids, "no job lost"
    for job_id, job in ended.items():
        assert (job.state, job.restart_count) == (jobs.JobState.COMPLETED, 0), job
        assert len(runs_of(tmp_path, job_id)) == 1, "ran twice"
    assert service.repository.unreleased_allocations() == []
    wait_until(lambda: queue_unacknowledged(settings) == 0, 15, "every queue entry to be acknowledged")
    wait_until(lambda: all(u.cpus == 0 and u.memory_mb == 0 for u in ray_used_by_node().values()), 15,
               "Ray's used resources to return to zero")


@pytest.mark.timeout(90)
def test_scheduler_restart_keeps_running_attempts_which_the_new_actor_adopts(settings_factory, scheduler_factory,
                                                                             tmp_path: Path) -> None:
    """2f: the actor's process replaced (an upgrade): the keepers own the tasks, so the scripts go on,
    the new actor adopts them, and each ends once with its true end; requeue or not does not matter."""
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

    old_actor = actor_pid(handle)
    ray.kill(handle, no_restart=False)  # the actor process replaced, as for an upgrade
    # ray.kill only asks: until the old process is gone, it may still answer start() ("running").
    wait_until(lambda: not pid_alive(old_actor), 30, "the old actor's process to end")
    _supervise(handle)

    assert all(pid_alive(pid) for pid in (again_pid, once_pid, again_worker, once_worker)), \
        "the scripts and their workers belong to the keeper: they outlive the scheduler"
    hold.unlink()
    for job_id in (again, once):
        done = wait_until(lambda i=job_id: (j := service.get(i)).state.is_terminal() and j, 30, "the job to end")
        assert (done.state, done.restart_count, len(runs_of(tmp_path, job_id))) == (jobs.JobState.COMPLETED, 0, 1)
    assert service.repository.unreleased_allocations() == []
