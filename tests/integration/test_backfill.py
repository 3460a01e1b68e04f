"""Backfill and priority on the real scheduler: the session's 32-CPU node, PostgreSQL + Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conductor import jobs
from conductor.service import JobService
from tests.helpers import spec, wait_for

pytestmark = pytest.mark.ray


def _waiter(marker: Path) -> str:
    return f"#!/bin/bash\nwhile [ ! -e {marker} ]; do sleep 0.05; done\n"


@pytest.fixture
def service(settings_factory, scheduler_factory):  # noqa: ANN001, ANN201
    settings = settings_factory("postgres-redis", worker_concurrency=64, kill_wait_s=1)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    yield service
    service.close()


def _state(service: JobService, job_id: int) -> jobs.Job:
    return service.get(job_id)


def test_a_short_job_is_backfilled_beside_a_reservation_and_a_long_one_is_not(service, tmp_path) -> None:
    done = tmp_path / "done"
    blocker = service.submit(spec(_waiter(done), cpus_per_task=24, time_limit_s=600, working_dir=str(tmp_path)))
    wait_for(lambda: _state(service, blocker.id).state is jobs.JobState.RUNNING, 30)
    big = service.submit(spec(_waiter(done), cpus_per_task=30, time_limit_s=60, working_dir=str(tmp_path)))
    short = service.submit(spec(_waiter(done), cpus_per_task=4, time_limit_s=60, working_dir=str(tmp_path)))
    endless = service.submit(spec(_waiter(done), cpus_per_task=4, working_dir=str(tmp_path)))  # no limit
    # big waits for the blocker (reservation in ~600 s); short ends long before that: it starts now.
    wait_for(lambda: _state(service, short.id).state is jobs.JobState.RUNNING, 30, message="short backfilled")
    wait_for(lambda: (_state(service, big.id).reason, _state(service, endless.id).reason)
             == (jobs.Reason.RESOURCES, jobs.Reason.PRIORITY), 15, message="big Resources, endless Priority")
    # endless would fit now (32 - 24 - 4 = 4 CPUs free) but would still hold them when big (30) is due.
    assert _state(service, endless.id).state is jobs.JobState.PENDING
    done.touch()
    for job in (blocker, big, short, endless):
        wait_for(lambda j=job: _state(service, j.id).state is jobs.JobState.COMPLETED, 60)
    assert _state(service, big.id).start_time < _state(service, endless.id).start_time


def test_a_large_job_is_not_starved_by_a_stream_of_small_ones(service, tmp_path) -> None:
    """16 one-CPU jobs always queued (each 1.5 s, honest 3 s limit) and a 32-CPU job submitted early:
    the big job must start while the stream still flows, not once it dries up."""
    small = "#!/bin/bash\nsleep 1.5\n"
    submitted: list[int] = []

    def feed(count: int) -> None:
        for _ in range(count):
            submitted.append(service.submit(spec(small, cpus_per_task=1, time_limit_s=3, working_dir=str(tmp_path))).id)

    feed(40)
    wait_for(lambda: sum(_state(service, i).state is jobs.JobState.RUNNING for i in submitted[:40]) >= 20, 30,
             message="the stream running")
    big = service.submit(spec("#!/bin/bash\nsleep 0.5\n", cpus_per_task=32, time_limit_s=5,
                              working_dir=str(tmp_path)))
    deadline = time.monotonic() + 45
    while _state(service, big.id).state is jobs.JobState.PENDING:
        assert time.monotonic() < deadline, "the 32-CPU job was starved by the stream of small jobs"
        feed(8)  # keep the queue full of small jobs that would fit the free CPUs
        time.sleep(0.5)
    started = _state(service, big.id).start_time
    wait_for(lambda: all(_state(service, i).state.is_terminal() for i in [*submitted, big.id]), 120,
             message="everything ended")
    assert _state(service, big.id).state is jobs.JobState.COMPLETED
    smalls = [_state(service, i) for i in submitted]
    overtaken = [j for j in smalls if j.submit_time < started < j.start_time]
    assert overtaken, "small jobs were waiting when the big one started, and it went first"
