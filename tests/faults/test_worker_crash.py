"""Issue 6, 2b: kill -9 the Ray worker process running a job."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor import jobs
from conductor.service import JobService
from tests.faults.conftest import kill9, marked_script, runs_of, wait_until
from tests.helpers import pid_alive, ray_used_by_node, spec

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def test_killed_worker_fails_its_job_and_the_others_carry_on(settings_factory, scheduler_factory,
                                                              tmp_path: Path) -> None:
    settings = settings_factory("postgres-redis", worker_concurrency=4)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    hold = tmp_path / "hold"
    hold.touch()
    script = marked_script(tmp_path, hold)
    ids = [service.submit(spec(script, name=f"w{i}", cpus_per_task=2, working_dir=str(tmp_path))).id
           for i in range(3)]
    wait_until(lambda: all(runs_of(tmp_path, i) for i in ids), 30, "every job's script to start")
    victim, others = ids[0], ids[1:]
    _, script_pid, worker_pid = runs_of(tmp_path, victim)[0]

    kill9(worker_pid)

    ended = wait_until(lambda: _terminal(service, victim), 15, "the victim's end to be recorded")
    assert ended.state in (jobs.JobState.FAILED, jobs.JobState.NODE_FAIL), ended
    assert ended.reason is jobs.Reason.SYSTEM_FAILURE and "worker" in ended.reason_message, ended
    assert victim not in {a.job_id for a in service.repository.unreleased_allocations()}
    # No process outlives its job (invariant 6): the script the dead worker started is gone too.
    wait_until(lambda: not pid_alive(script_pid), 15, "the victim's script to be killed")
    assert all(service.get(i).state is jobs.JobState.RUNNING for i in others), "the others carry on"

    hold.unlink()
    wait_until(lambda: all(service.get(i).state is jobs.JobState.COMPLETED for i in others), 30,
               "the others to complete")
    assert [len(runs_of(tmp_path, i)) for i in ids] == [1, 1, 1]
    assert not (tmp_path / f"ends-{victim}").exists()
    assert service.repository.unreleased_allocations() == []
    wait_until(lambda: all(u.cpus == 0 and u.memory_mb == 0 for u in ray_used_by_node().values()), 15,
               "Ray's used resources to return to zero")


def _terminal(service: JobService, job_id: int) -> jobs.Job | None:
    job = service.get(job_id)
    return job if job.state.is_terminal() else None
