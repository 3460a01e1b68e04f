"""Slurm's job lifecycle through the real scheduler: limits, cancel, signal, hold, requeue, arrays, dependencies."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conductor import arrays, jobs
from conductor.service import JobService
from tests.helpers import spec, wait_for

pytestmark = pytest.mark.ray


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _state(service: JobService, job_id: int) -> jobs.JobState:
    return service.get(job_id).state


@pytest.fixture
def running_service(settings_factory, scheduler_factory):
    """A service whose scheduler runs; parametrised over both backends by the tests that take `backend`."""

    def make(backend: str, **overrides) -> JobService:
        settings = settings_factory(backend, **overrides)
        service = JobService.from_settings(settings)
        scheduler_factory(settings)
        return service

    return make


def test_time_limit_ends_timeout_within_the_grace_period(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    job = service.submit(spec("sleep 60", time_limit_s=2, working_dir=str(tmp_path))).id
    wait_for(lambda: _state(service, job).is_terminal(), 2 + 2 + 10)  # limit + KillWait (2 s here) + slack
    ended = service.get(job)
    assert (ended.state, ended.reason) == (jobs.JobState.TIMEOUT, jobs.Reason.TIME_LIMIT)
    assert (ended.end_time - ended.start_time).total_seconds() < 2 + 2 + 2


def test_memory_past_the_request_ends_out_of_memory(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    hog = 'python3 -c "b = bytearray(400 * 1024 * 1024); import time; time.sleep(30)"\n'
    job = service.submit(spec(hog, memory_per_node_mb=100, working_dir=str(tmp_path))).id
    wait_for(lambda: _state(service, job).is_terminal(), 20)
    ended = service.get(job)
    assert (ended.state, ended.reason, ended.exit_code_text) == (jobs.JobState.OUT_OF_MEMORY,
                                                                 jobs.Reason.OUT_OF_MEMORY, "0:9")
    assert ended.usage.max_rss_kb > 100 * 1024


def test_accounting_is_recorded(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    busy = 'python3 -c "b = bytearray(60 * 1024 * 1024); import time; t = time.time()\nwhile time.time() - t < 1.2: pass"\n'
    job = service.submit(spec(busy, working_dir=str(tmp_path))).id
    wait_for(lambda: _state(service, job) is jobs.JobState.COMPLETED, 30)
    done = service.get(job)
    assert done.usage.cpu_time_user_s + done.usage.cpu_time_system_s > 0.8
    assert 50 * 1024 < done.usage.max_rss_kb < 300 * 1024


def test_cancel_pending_and_running_leaves_no_process(running_service, backend, tmp_path: Path) -> None:
    service = running_service(backend, worker_concurrency=1)
    stubborn = ("#!/bin/bash\n"
                "bash -c 'trap \"\" TERM; sleep 300' &\n"
                "echo $! > grandchild-$SLURM_JOB_ID\n"
                "trap '' TERM\n"
                "sleep 300\n")
    running = service.submit(spec(stubborn, working_dir=str(tmp_path))).id
    waiting = service.submit(spec("true", working_dir=str(tmp_path))).id
    marker = tmp_path / f"grandchild-{running}"
    wait_for(marker.exists, 30)
    grandchild = int(marker.read_text())
    assert service.cancel([waiting]) == {"cancelled": [waiting], "signalled": []}
    assert _state(service, waiting) is jobs.JobState.CANCELLED
    assert service.cancel([running]) == {"cancelled": [], "signalled": [running]}
    wait_for(lambda: _state(service, running).is_terminal(), 2 + 15)  # KillWait is 2 s in tests
    ended = service.get(running)
    assert (ended.state, ended.exit_code_text) == (jobs.JobState.CANCELLED, "0:15")
    assert not _pid_alive(grandchild)
    assert service.repository.unreleased_allocations() == []


def test_signal_reaches_a_running_job_which_goes_on(running_service, backend, tmp_path: Path) -> None:
    service = running_service(backend)
    script = ("#!/bin/bash\ntrap 'echo got-usr1 >> signals' USR1\ntouch trap-ready\n"
              "for i in $(seq 30); do sleep 0.1; done\n")
    job = service.submit(spec(script, working_dir=str(tmp_path))).id
    wait_for((tmp_path / "trap-ready").exists, 20)  # bash has installed its trap
    assert service.cancel([job], signal_number=10) == {"cancelled": [], "signalled": [job]}
    wait_for((tmp_path / "signals").exists, 10)
    assert _state(service, job) is jobs.JobState.RUNNING
    wait_for(lambda: _state(service, job) is jobs.JobState.COMPLETED, 30)


def test_hold_and_release(running_service, backend, tmp_path: Path) -> None:
    service = running_service(backend)
    held = service.submit(spec("true", hold="user", working_dir=str(tmp_path))).id
    later = service.submit(spec("true", working_dir=str(tmp_path), begin_time=datetime.now(timezone.utc)
                                + timedelta(days=1))).id
    wait_for(lambda: service.get(held).reason == jobs.Reason.HELD_USER, 10)
    assert service.hold([later]) == [later]
    assert service.release([later]) == [later]
    wait_for(lambda: service.get(later).reason == jobs.Reason.BEGIN_TIME, 10)
    assert _state(service, held) is jobs.JobState.PENDING
    assert service.release([held]) == [held]
    wait_for(lambda: _state(service, held) is jobs.JobState.COMPLETED, 20)
    service.cancel([later])


def test_begin_time_starts_the_job_when_it_comes(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    begin = datetime.now(timezone.utc) + timedelta(seconds=2)
    job = service.submit(spec("true", begin_time=begin, working_dir=str(tmp_path))).id
    wait_for(lambda: service.get(job).reason == jobs.Reason.BEGIN_TIME, 5)
    wait_for(lambda: _state(service, job) is jobs.JobState.COMPLETED, 15)
    assert service.get(job).start_time >= begin


def test_requeue_a_running_job_runs_it_again(running_service, backend, tmp_path: Path) -> None:
    service = running_service(backend)
    script = ('#!/bin/bash\necho run >> runs\n'
              'if [ -z "$SLURM_RESTART_COUNT" ]; then sleep 60; fi\n')  # set only after a requeue, as in Slurm
    job = service.submit(spec(script, working_dir=str(tmp_path))).id
    wait_for((tmp_path / "runs").exists, 20)
    assert service.requeue([job]) == {"requeued": [job]}
    wait_for(lambda: _state(service, job) is jobs.JobState.COMPLETED, 30)
    assert service.get(job).restart_count == 1
    assert (tmp_path / "runs").read_text() == "run\nrun\n"
    assert service.requeue([job]) == {"requeued": [job]}  # an ended job goes back too
    wait_for(lambda: service.get(job).restart_count == 2 and _state(service, job) is jobs.JobState.COMPLETED, 30)


def test_array_throttle_holds_at_every_moment(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded", worker_concurrency=8)
    script = "#!/bin/bash\necho \"$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $CONDUCTOR_ARRAY_TASK_ID\"\nsleep 0.3\n"
    tasks = service.submit_array(spec(script, name="arr", working_dir=str(tmp_path)), arrays.parse("0-19%3"))
    ids = [task.id for task in tasks]
    array_id = ids[0]
    most = 0
    while not all(state.is_terminal() for state in service.repository.states_of(ids).values()):
        running = sum(s is jobs.JobState.RUNNING for s in service.repository.states_of(ids).values())
        most = max(most, running)
        time.sleep(0.02)  # a sampling period
    assert most == 3
    assert {s for s in service.repository.states_of(ids).values()} == {jobs.JobState.COMPLETED}
    task5 = service.get(ids[5])
    assert task5.display_id == f"{array_id}_5"
    assert Path(task5.stdout_path).name == f"slurm-{array_id}_5.out"
    assert Path(task5.stdout_path).read_text() == f"{array_id} 5 5\n"


def test_cancelling_the_array_id_cancels_every_task(running_service, backend, tmp_path: Path) -> None:
    service = running_service(backend)
    tasks = service.submit_array(spec("sleep 30", working_dir=str(tmp_path)), arrays.parse("1-6%2"))
    ids = [task.id for task in tasks]
    wait_for(lambda: sum(s is jobs.JobState.RUNNING for s in service.repository.states_of(ids).values()) == 2, 20)
    result = service.cancel([ids[0]])
    assert sorted(result["cancelled"] + result["signalled"]) == ids
    wait_for(lambda: all(s is jobs.JobState.CANCELLED for s in service.repository.states_of(ids).values()), 20)


def test_dependencies_afterok_afternotok_afterany(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    first = service.submit(spec("sleep 1\nexit 3", working_dir=str(tmp_path))).id
    on_ok = service.submit(spec("true", dependency=f"afterok:{first}", working_dir=str(tmp_path))).id
    on_fail = service.submit(spec("true", dependency=f"afternotok:{first}", working_dir=str(tmp_path))).id
    on_any = service.submit(spec("true", dependency=f"afterany:{first}?afterok:{first}",
                                 working_dir=str(tmp_path))).id
    wait_for(lambda: service.get(on_ok).reason == jobs.Reason.DEPENDENCY, 10)
    wait_for(lambda: _state(service, on_fail) is jobs.JobState.COMPLETED, 30)
    wait_for(lambda: _state(service, on_any) is jobs.JobState.COMPLETED, 30)
    assert service.get(on_fail).start_time >= service.get(first).end_time
    wait_for(lambda: service.get(on_ok).reason == jobs.Reason.DEPENDENCY_NEVER, 10)
    assert _state(service, on_ok) is jobs.JobState.PENDING  # as Slurm: it stays, never satisfied
    service.cancel([on_ok])


def test_singleton_waits_for_the_earlier_namesake(running_service, tmp_path: Path) -> None:
    service = running_service("sqlite-embedded")
    first = service.submit(spec("sleep 1.5", name="single", working_dir=str(tmp_path))).id
    second = service.submit(spec("true", name="single", dependency="singleton", working_dir=str(tmp_path))).id
    wait_for(lambda: _state(service, second) is jobs.JobState.COMPLETED, 30)
    assert service.get(second).start_time >= service.get(first).end_time


def test_unknown_dependency_is_refused_at_submit(running_service, tmp_path: Path) -> None:
    from conductor.exceptions import InvalidJobSpec

    service = running_service("sqlite-embedded")
    with pytest.raises(InvalidJobSpec, match="job 999999 does not exist"):
        service.submit(spec("true", dependency="afterok:999999", working_dir=str(tmp_path)))
    with pytest.raises(InvalidJobSpec, match="not a dependency type"):
        service.submit(spec("true", dependency="afterwards:1", working_dir=str(tmp_path)))
