"""Issue 6, 3: random sequences of submit, cancel, finish and kill against the real scheduler.

A hypothesis state machine drives one scheduler actor (real Ray, real database and queue)
with random operations and, after every step, checks the DESIGN.md invariants that hold at
any moment; its ``settle`` rule waits for a quiet moment and checks the ones that hold only
then.  Job scripts record each run (``runs-<id>``: restart count and pid) and mark their start
and end, and wait for a ``finish-<id>`` file the test creates: that is how a job "finishes".
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import ray
from hypothesis import HealthCheck, Phase, settings as hypothesis_settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from conductor import jobs
from conductor.exceptions import InvalidJobSpec
from conductor.service import JobService
from tests.conftest import RAY_NODE_CPUS, RAY_NODE_MEMORY_MB
from tests.helpers import AllocationSampler, pid_alive, ray_used_by_node_nonzero, spec, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

CONCURRENCY = 3
MAX_EXAMPLES, STEPS = 10, 15
#: Longest wait for a quiet moment (every allocated job's script started a while ago, none ending).
SETTLE_S = 30

SCRIPT = ('#!/bin/bash\necho "$CONDUCTOR_RESTART_COUNT $$" >> {d}/runs-$SLURM_JOB_ID\n'
          'touch {d}/started-$SLURM_JOB_ID\n'
          'while [ ! -e {d}/finish-$SLURM_JOB_ID ]; do sleep 0.2; done\n'
          'touch {d}/ended-$SLURM_JOB_ID\n')

#: CPUs and memory requests: most fit the 32-CPU / 64 GiB node, some only one at a time, some never.
CPUS = st.one_of(st.integers(1, 4), st.integers(1, 8), st.sampled_from([12, 20, 32, 33]))
MEMORY_MB = st.sampled_from([0, 256, 1024, 30 * 1024, 64 * 1024, 65 * 1024])


class Context:
    """What the machine needs from the test's fixtures (one scheduler for every example), and a tally."""

    def __init__(self, service: JobService, handle: object, markers: Path) -> None:
        self.service, self.handle, self.markers = service, handle, markers
        self.sampler = AllocationSampler(service.repository, markers)
        self.tally: Counter[str] = Counter()


def runs(markers: Path, job_id: int) -> list[tuple[int, int]]:
    try:
        return [tuple(map(int, line.split())) for line in (markers / f"runs-{job_id}").read_text().splitlines()]
    except FileNotFoundError:
        return []


def _running_group(job_id: int, pid: int) -> bool:
    """Whether ``pid`` (a run's script, its group's leader) still runs as this job (not a reused pid)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        pgrp = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return False
    return f"CONDUCTOR_JOB_ID={job_id}".encode() in environ and pgrp == pid


class SchedulerMachine(RuleBasedStateMachine):
    context: Context

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []

    @property
    def service(self) -> JobService:
        return self.context.service

    @property
    def markers(self) -> Path:
        return self.context.markers

    def _pick(self, index: int) -> int:
        return self.ids[index % len(self.ids)]

    # -- operations ------------------------------------------------------------------------

    @rule(cpus=CPUS, memory_mb=MEMORY_MB)
    def submit(self, cpus: int, memory_mb: int) -> None:
        fits = cpus <= RAY_NODE_CPUS and memory_mb <= RAY_NODE_MEMORY_MB
        job_spec = spec(SCRIPT.format(d=self.markers), cpus_per_task=cpus, memory_per_node_mb=memory_mb or None,
                        working_dir=str(self.markers))
        if fits:
            self.ids.append(self.service.submit(job_spec).id)
            return
        pending_before = set(self.service.repository.ids_in_state(jobs.JobState.PENDING))
        with pytest.raises(InvalidJobSpec):
            self.service.submit(job_spec)
        self.context.tally["refused at submit"] += 1
        assert set(self.service.repository.ids_in_state(jobs.JobState.PENDING)) <= pending_before, \
            "a refused job was stored"

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 1000))
    def finish(self, index: int) -> None:
        (self.markers / f"finish-{self._pick(index)}").touch()

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 1000))
    def cancel(self, index: int) -> None:
        job_id = self._pick(index)
        (self.markers / f"ended-{job_id}").touch()  # its end is on its way: not a quiet moment
        self.service.cancel([job_id])

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 1000))
    def kill(self, index: int) -> None:
        """SIGKILL the job's process group: its last run's script leads it."""
        job_id = self._pick(index)
        started = runs(self.markers, job_id)
        if not started or not _running_group(job_id, started[-1][1]):
            return  # not running (yet, or any more)
        pgid = started[-1][1]
        (self.markers / f"ended-{job_id}").touch()
        self.context.tally["process groups killed"] += 1
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @rule()
    def settle(self) -> None:
        """Wait for a quiet moment with every pending job's reason recorded (the scheduler has seen
        them all), then compare the allocation rows with Ray's usage."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            sample = self.context.sampler.sample()
            unseen = [j.id for j in self.service.repository.get_many(self.ids)
                      if j.state is jobs.JobState.PENDING and j.reason in ("", jobs.Reason.NONE)]
            if sample["quiet"] and not unseen:
                break
            assert time.monotonic() < deadline, f"no quiet moment in {SETTLE_S} s: {sample}, no reason: {unseen}"
            time.sleep(0.1)
        assert sample["db"] == sample["ray"], sample
        self.context.tally["quiet comparisons" + (" with jobs running" if sample["db"] else "")] += 1

    # -- invariants after every step -------------------------------------------------------

    @invariant()
    def at_most_worker_concurrency_in_flight(self) -> None:
        in_flight = ray.get(self.context.handle.describe.remote(), timeout=30).running
        running = sum(j.state is jobs.JobState.RUNNING for j in self.service.repository.get_many(self.ids))
        assert in_flight <= CONCURRENCY and running <= CONCURRENCY, (in_flight, running)

    @invariant()
    def allocations_never_exceed_a_node(self) -> None:
        self.context.sampler.sample()  # asserts rows <= each node's total

    @invariant()
    def no_job_runs_twice_and_ended_jobs_leave_no_process(self) -> None:
        for job in self.service.repository.get_many(self.ids):
            attempts = runs(self.markers, job.id)
            assert len(attempts) <= job.restart_count + 1, f"job {job.id} ran {len(attempts)} times: {job}"
            alive = [pid for _, pid in attempts if pid_alive(pid)]
            assert len(alive) <= 1, f"job {job.id} has two live runs {alive}"
            if job.state.is_terminal():
                assert not alive, f"job {job.id} is {job.state.value} but its script {alive} is alive"

    def teardown(self) -> None:
        """End every job of the example, and check that nothing is left held or running."""
        for job_id in self.ids:
            (self.markers / f"finish-{job_id}").touch()
        pending = [j.id for j in self.service.repository.get_many(self.ids) if j.state is jobs.JobState.PENDING]
        if pending:
            self.service.cancel(pending)
        wait_for(lambda: all(j.state.is_terminal() for j in self.service.repository.get_many(self.ids)), 60,
                 interval_s=0.1, message="every job of the example to end")
        self.no_job_runs_twice_and_ended_jobs_leave_no_process()
        for job in self.service.repository.get_many(self.ids):
            self.context.tally[f"ended {job.state.value}"] += 1
        assert self.service.repository.unreleased_allocations() == []
        wait_for(lambda: ray_used_by_node_nonzero() == {}, 15, message="Ray to report every lease returned")


@pytest.mark.parametrize("backend", ["postgres-redis", "sqlite-embedded"])
def test_random_operations_keep_the_invariants(backend, settings_factory, scheduler_factory, tmp_path) -> None:
    settings = settings_factory(backend, worker_concurrency=CONCURRENCY, kill_wait_s=1.0)
    service = JobService.from_settings(settings)
    handle = scheduler_factory(settings)

    class Machine(SchedulerMachine):
        context = Context(service, handle, tmp_path)

    started = time.monotonic()
    run_state_machine_as_test(Machine, settings=hypothesis_settings(
        max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keep the run bounded; the steps are printed
        suppress_health_check=list(HealthCheck)))
    tally = Machine.context.tally
    print(f"{backend}: {MAX_EXAMPLES} examples of up to {STEPS} steps in {time.monotonic() - started:.1f} s: "
          f"{dict(tally)}")
    # The run exercised what it claims to (random, so only the likeliest things are required).
    assert tally["quiet comparisons with jobs running"] >= 1 and tally["ended COMPLETED"] >= 1, dict(tally)
    service.close()
