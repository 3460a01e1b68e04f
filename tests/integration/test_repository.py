"""JobRepository on PostgreSQL and on SQLite: the same code, conditional transitions."""

from __future__ import annotations

from conductor import jobs
from conductor.db.repository import JobRepository, NodeInfo, Outcome, Start
from tests.helpers import spec


def _start(job_id: int, cpus: int = 2, memory_mb: int = 512) -> Start:
    return Start(job_id=job_id, node_name="n1", ray_node_id="ray-n1", cpus=cpus, memory_mb=memory_mb)


def test_add_job_stores_every_field_and_default_output_path(repository: JobRepository) -> None:
    job = repository.add_job(spec("#!/bin/bash\ntrue\n", name="j1", account="acct", partition="p1",
                                  cpus_per_task=4, ntasks_per_node=2, memory_per_node_mb=8192, time_limit_s=60,
                                  environment={"A": "1"}, argv=("x", "y"), working_dir="/data/run"))
    stored = repository.get(job.id)
    assert stored.state is jobs.JobState.PENDING
    assert stored.spec.total_cpus == 8
    assert stored.spec.memory_per_node_mb == 8192
    assert stored.spec.environment == {"A": "1"}
    assert stored.spec.argv == ("x", "y")
    assert stored.stdout_path == f"/data/run/conductor-{job.id}.out"
    assert stored.stderr_path == stored.stdout_path
    assert stored.submit_time.tzinfo is not None


def test_output_patterns_expand_with_id_and_name(repository: JobRepository) -> None:
    job = repository.add_job(spec("true", name="train", stdout_pattern="out-%x-%j.txt",
                                  stderr_pattern="/logs/%u/err-%6j.txt", working_dir="/w"))
    assert job.stdout_path == f"/w/out-train-{job.id}.txt"
    assert job.stderr_path == f"/logs/tester/err-{job.id:06d}.txt"


def test_start_is_conditional_so_a_job_starts_once(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    assert repository.start_jobs([_start(job.id)]) == {job.id}
    assert repository.start_jobs([_start(job.id)]) == set()
    assert repository.unreleased_by_node() == {"ray-n1": (2, 512)}
    running = repository.get(job.id)
    assert running.state is jobs.JobState.RUNNING and running.node_name == "n1" and running.start_time


def test_finish_records_outcome_and_releases_allocation(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    outcome = Outcome(jobs.JobState.FAILED, jobs.Reason.NON_ZERO_EXIT, exit_code=3, cpu_time_user_s=1.5,
                      max_rss_kb=1000)
    assert repository.finish_job(job.id, outcome) is True
    assert repository.finish_job(job.id, outcome) is False
    done = repository.get(job.id)
    assert (done.state, done.exit_code, done.exit_code_text, done.max_rss_kb) == (jobs.JobState.FAILED, 3, "3:0", 1000)
    assert done.end_time is not None
    assert repository.unreleased_by_node() == {}


def test_requeue_returns_job_to_pending_and_counts_restart(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    assert repository.requeue_running(job.id, "Requeued: test") is True
    again = repository.get(job.id)
    assert (again.state, again.restart_count, again.reason) == (jobs.JobState.PENDING, 1, "Requeued: test")
    assert repository.unreleased_by_node() == {}


def test_pending_reasons_only_touch_pending_jobs(repository: JobRepository) -> None:
    waiting = repository.add_job(spec("true"))
    started = repository.add_job(spec("true"))
    repository.start_jobs([_start(started.id)])
    repository.set_pending_reasons({jobs.Reason.RESOURCES: [waiting.id, started.id]})
    assert repository.get(waiting.id).reason == jobs.Reason.RESOURCES
    assert repository.get(started.id).reason == jobs.Reason.NONE


def test_delete_pending_only_deletes_pending(repository: JobRepository) -> None:
    pending = repository.add_job(spec("true"))
    running = repository.add_job(spec("true"))
    repository.start_jobs([_start(running.id)])
    assert repository.delete_pending(pending.id) is True
    assert repository.delete_pending(running.id) is False
    assert repository.get_many([pending.id, running.id])[0].id == running.id


def test_release_orphaned_allocations(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    assert repository.release_orphaned_allocations() == 0
    repository.requeue_running(job.id, "x")
    assert repository.release_orphaned_allocations() == 0  # requeue already released it
    assert repository.unreleased_by_node() == {}


def test_nodes_are_replaced_as_a_set(repository: JobRepository) -> None:
    a = NodeInfo("a", "ray-a", 32, 65536, 0, {"partition": "x"}, True)
    b = NodeInfo("b", "ray-b", 8, 1024, 1, {}, True)
    repository.replace_nodes([a, b])
    assert [n.name for n in repository.nodes()] == ["a", "b"]
    repository.replace_nodes([b])
    assert [n.name for n in repository.nodes()] == ["b"]
    assert [n.name for n in repository.nodes(alive_only=False)] == ["a", "b"]
