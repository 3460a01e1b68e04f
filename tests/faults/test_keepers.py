"""Issue 11: running jobs outlive the scheduler.  The keeper of each node owns its job tasks.

On the session's Ray with two more nodes of other sizes (k1: 8 CPUs; k2: 8 CPUs and a GPU):
the scheduler actor SIGKILLed or killed for good while jobs run (they finish once, with their
true exit codes, and the pending ones run after), a time limit passing and a job ending while no
scheduler runs (recorded when one is back), and a keeper SIGKILLed (its jobs end NODE_FAIL or are
requeued, naming it; the other nodes' jobs carry on).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from conductor import jobs, partitions
from conductor.keeper.handle import name_of
from conductor.resources import NODE_NAME_LABEL
from conductor.scheduler import handle as scheduler
from conductor.service import JobService
from tests.faults.conftest import actor_pid, kill9, queue_unacknowledged, wait_until
from tests.helpers import pid_alive, ray_used_by_node, spec, wait_for

pytestmark = pytest.mark.ray

_GIB = 1024 ** 3
#: Records each run (restart count and pid), waits while the hold file exists, then exits with CODE.
SCRIPT = ('#!/bin/bash\necho "${{SLURM_RESTART_COUNT:-0}} $$" >> {m}/runs-$SLURM_JOB_ID\n'
          'while [ -e {hold} ]; do sleep 0.1; done\nexit {code}\n')


@pytest.fixture(scope="module")
def two_nodes(ray_local_cluster):  # noqa: ANN001, ANN201
    added = [ray_local_cluster.add_node(num_cpus=8, memory=16 * _GIB, object_store_memory=80 * 1024 * 1024,
                                        node_name=name, num_gpus=gpus, labels={NODE_NAME_LABEL: name})
             for name, gpus in (("k1", 0), ("k2", 1))]
    ray_local_cluster.wait_for_nodes()
    yield ray_local_cluster
    for node in added:
        ray_local_cluster.remove_node(node)
    wait_for(lambda: sum(1 for n in ray.nodes() if n["Alive"]) == 1, 30, message="the added nodes gone")


def runs(markers: Path, job_id: int) -> list[tuple[int, int]]:
    try:
        return [tuple(map(int, line.split())) for line in (markers / f"runs-{job_id}").read_text().splitlines()]
    except FileNotFoundError:
        return []


def _supervise(handle, timeout_s: float = 90):  # noqa: ANN001, ANN202
    """What `conductor up` does every 2 s: call the actor's idempotent start until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return scheduler.start(handle, timeout_s=60)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _all_ended(service: JobService, ids: list[int]) -> bool:
    return all(job.state.is_terminal() for job in service.repository.get_many(ids))


def _nothing_held(service: JobService, settings) -> None:  # noqa: ANN001
    assert service.repository.unreleased_allocations() == []
    wait_until(lambda: queue_unacknowledged(settings) == 0, 20, "every queue entry acknowledged")
    wait_until(lambda: all(u.cpus == 0 and u.memory_mb == 0 and u.gpus == 0 for u in ray_used_by_node().values()),
               20, "Ray's used resources back to zero")


@pytest.mark.timeout(240)
def test_scheduler_sigkilled_while_8_jobs_run_and_50_wait_each_job_runs_once(
        two_nodes, settings_factory, scheduler_factory, tmp_path: Path) -> None:
    settings = settings_factory("postgres-redis", worker_concurrency=8)
    service = JobService.from_settings(settings)
    handle = scheduler_factory(settings)
    wait_until(lambda: len(service.repository.nodes()) >= 3, 30, "the scheduler sees three nodes")
    hold = tmp_path / "hold"
    hold.touch()
    codes = {0: 0, 1: 3, 2: 0, 3: 1, 4: 0, 5: 7, 6: 0, 7: 0}
    specs = [spec(SCRIPT.format(m=tmp_path, hold=hold, code=codes[i]), name=f"long{i}", working_dir=str(tmp_path),
                  **({"nodes": 2, "cpus_per_task": 2} if i == 0 else {"gpus_per_node": 1} if i == 1 else {}))
             for i in range(8)]
    long = [job.id for job in service.submit_many(specs)]
    wait_until(lambda: all(runs(tmp_path, i) for i in long), 90, "8 scripts running")
    short = [job.id for job in service.submit_many(
        [spec(SCRIPT.format(m=tmp_path, hold=tmp_path / "never", code=0), name=f"short{i}",
              working_dir=str(tmp_path)) for i in range(50)])]
    wide, gpu = service.get(long[0]), service.get(long[1])
    assert len(wide.node_list.split(",")) == 2 and gpu.node_name == "k2"
    scripts = {i: runs(tmp_path, i)[0][1] for i in long}

    kill9(actor_pid(handle))
    _supervise(handle)  # Ray restarted the actor (max_restarts=-1); start() adopts the running jobs

    assert all(pid_alive(pid) for pid in scripts.values()), "a script was stopped with the scheduler"
    assert all(service.get(i).state is jobs.JobState.RUNNING for i in long)
    hold.unlink()
    wait_until(lambda: _all_ended(service, long + short), 120, "every job to end")
    for index, job_id in enumerate(long):
        job = service.get(job_id)
        expected = jobs.JobState.COMPLETED if codes[index] == 0 else jobs.JobState.FAILED
        assert (job.state, job.exit_code_text, job.restart_count) == (expected, f"{codes[index]}:0", 0), job
        assert runs(tmp_path, job_id) == [(0, scripts[job_id])], "ran more than once"
    for job_id in short:
        job = service.get(job_id)
        assert (job.state, job.restart_count, len(runs(tmp_path, job_id))) == (jobs.JobState.COMPLETED, 0, 1), job
    _nothing_held(service, settings)


@pytest.mark.timeout(180)
def test_a_new_scheduler_records_what_ended_and_timed_out_while_none_ran(
        two_nodes, settings_factory, scheduler_factory, tmp_path: Path) -> None:
    """ray.kill of the actor (for good, as an upgrade replaces it): a job exits 3 and another passes
    its time limit while no scheduler runs; a third goes on.  The next scheduler records each truly."""
    settings = settings_factory("sqlite-embedded", worker_concurrency=4, kill_wait_s=1.0)
    service = JobService.from_settings(settings)
    handle = scheduler_factory(settings)
    gate, hold = tmp_path / "gate", tmp_path / "hold"
    gate.touch()
    hold.touch()
    fails = service.submit(spec(SCRIPT.format(m=tmp_path, hold=gate, code=3), name="fails",
                                working_dir=str(tmp_path))).id
    slow = service.submit(spec(SCRIPT.format(m=tmp_path, hold=hold, code=0), name="slow", time_limit_s=4,
                               working_dir=str(tmp_path))).id
    goes_on = service.submit(spec(SCRIPT.format(m=tmp_path, hold=hold, code=0), name="goes-on",
                                  working_dir=str(tmp_path))).id
    wait_until(lambda: all(runs(tmp_path, i) for i in (fails, slow, goes_on)), 60, "three scripts running")

    ray.kill(handle, no_restart=True)  # gone for good: no scheduler at all now
    gate.unlink()  # `fails` exits 3, and `slow` passes its 4 s limit, with nobody to record it
    wait_until(lambda: not pid_alive(runs(tmp_path, fails)[0][1]) and not pid_alive(runs(tmp_path, slow)[0][1]),
               30, "the failing script to exit and the slow one to be killed at its limit")
    assert {service.get(i).state for i in (fails, slow, goes_on)} == {jobs.JobState.RUNNING}

    newer = scheduler_factory(settings)  # a new actor (the upgraded one): it adopts and records
    assert newer is not handle
    failed = wait_until(lambda: (j := service.get(fails)).state.is_terminal() and j, 30, "the failure recorded")
    assert (failed.state, failed.exit_code_text, failed.restart_count) == (jobs.JobState.FAILED, "3:0", 0)
    timed_out = service.get(slow)
    assert (timed_out.state, timed_out.reason, timed_out.restart_count) == (
        jobs.JobState.TIMEOUT, jobs.Reason.TIME_LIMIT, 0)
    assert service.get(goes_on).state is jobs.JobState.RUNNING
    hold.unlink()
    done = wait_until(lambda: (j := service.get(goes_on)).state.is_terminal() and j, 30, "the last job to end")
    assert (done.state, done.restart_count, len(runs(tmp_path, goes_on))) == (jobs.JobState.COMPLETED, 0, 1)
    _nothing_held(service, settings)


@pytest.mark.timeout(180)
def test_a_keeper_sigkilled_ends_its_jobs_and_the_other_nodes_jobs_carry_on(
        two_nodes, settings_factory, scheduler_factory, tmp_path: Path) -> None:
    only_k1 = (partitions.parse("k1", "Nodes=k1"), partitions.parse("main", "Nodes=testnode Default=YES"))
    settings = settings_factory("postgres-redis", worker_concurrency=8, partitions=only_k1)
    service = JobService.from_settings(settings)
    scheduler_factory(settings)
    hold = tmp_path / "hold"
    hold.touch()
    script = SCRIPT.format(m=tmp_path, hold=hold, code=0)
    again = service.submit(spec(script, name="again", partition="k1", working_dir=str(tmp_path))).id
    once = service.submit(spec(script, name="once", partition="k1", requeue=False, working_dir=str(tmp_path))).id
    elsewhere = service.submit(spec(script, name="elsewhere", working_dir=str(tmp_path))).id
    wait_until(lambda: all(runs(tmp_path, i) for i in (again, once, elsewhere)), 60, "three scripts running")
    first = {i: runs(tmp_path, i)[0][1] for i in (again, once, elsewhere)}
    keeper = ray.get_actor(name_of("k1"), namespace=settings.ray_namespace)
    kill9(ray.get(keeper.hello.remote(), timeout=30).pid)

    failed = wait_until(lambda: (j := service.get(once)).state.is_terminal() and j, 60, "the k1 job to end")
    assert (failed.state, failed.reason) == (jobs.JobState.NODE_FAIL, jobs.Reason.NODE_DOWN)
    assert name_of("k1") in failed.reason_message, failed.reason_message
    assert not pid_alive(first[again]) and not pid_alive(first[once]), "their scripts were reaped"
    assert pid_alive(first[elsewhere]) and service.get(elsewhere).state is jobs.JobState.RUNNING
    hold.unlink()  # the requeued job runs again on k1, under the restarted keeper
    wait_until(lambda: _all_ended(service, [again, elsewhere]), 60, "the other jobs to end")
    requeued = service.get(again)
    assert (requeued.state, requeued.restart_count) == (jobs.JobState.COMPLETED, 1), requeued
    assert [run[0] for run in runs(tmp_path, again)] == [0, 1]
    assert (service.get(elsewhere).restart_count, len(runs(tmp_path, elsewhere))) == (0, 1)
    _nothing_held(service, settings)


@pytest.mark.timeout(120)
def test_a_keeper_of_another_protocol_is_reported_at_start_and_its_jobs_left_alone(
        ray_cluster, settings_factory, tmp_path: Path) -> None:
    """An upgrade whose keeper protocol changed: the new scheduler names the keeper and its version,
    and starts nothing (it neither adopts nor kills what that keeper runs)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from conductor.exceptions import ConductorError
    from conductor.keeper.protocol import PROTOCOL, KeeperInfo, KeeperState

    class OlderKeeper:  # what a keeper of an earlier conductor answers
        def hello(self) -> KeeperInfo:
            return KeeperInfo(PROTOCOL - 1, "0.0.9", "testnode", ray.get_runtime_context().get_node_id(), "old", 1)

        def state(self) -> KeeperState:
            return KeeperState(self.hello(), {7: "7-0-feedface"})

    settings = settings_factory("sqlite-embedded")
    JobService.from_settings(settings).close()  # the schema
    node_id = ray.get_runtime_context().get_node_id()
    older = ray.remote(OlderKeeper).options(
        name=name_of("testnode"), namespace=settings.ray_namespace, lifetime="detached", num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
    handle = scheduler.get_or_create(settings)
    try:
        with pytest.raises(ConductorError, match=r"testnode \(protocol 0, conductor 0.0.9\)"):
            scheduler.start(handle)
        assert ray.get(older.state.remote(), timeout=30).running == {7: "7-0-feedface"}, "left alone"
    finally:
        ray.kill(handle, no_restart=True)
        ray.kill(older, no_restart=True)
