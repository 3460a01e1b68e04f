"""JobRepository on PostgreSQL and on SQLite: the same code, conditional transitions."""

from __future__ import annotations

import tracemalloc

from conductor import jobs
from conductor.db.repository import MAX_REASON_MESSAGE, JobRepository
from conductor.resources import Allocation, Resources
from conductor.scheduler.ledger import Ledger
from tests.helpers import allocation, node, spec


def _start(job_id: int, cpus: int = 2, memory_mb: int = 512) -> Allocation:
    return allocation(job_id, cpus, memory_mb)


def test_add_job_stores_every_field_and_default_output_path(repository: JobRepository) -> None:
    job = repository.add_job(spec("#!/bin/bash\ntrue\n", name="j1", account="acct", partition="p1",
                                  cpus_per_task=4, ntasks_per_node=2, memory_per_node_mb=8192, time_limit_s=60,
                                  environment={"A": "1"}, argv=("x", "y"), working_dir="/data/run"))
    stored = repository.get(job.id)
    assert stored.state is jobs.JobState.PENDING
    assert stored.spec.per_node.cpus == 8
    assert stored.spec.memory_per_node_mb == 8192
    assert stored.spec.environment == {"A": "1"}
    assert stored.spec.argv == ("x", "y")
    assert stored.stdout_path == f"/data/run/slurm-{job.id}.out"
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
    assert repository.unreleased_by_node() == {"ray-n1": Resources(2, 512)}
    running = repository.get(job.id)
    assert running.state is jobs.JobState.RUNNING and running.node_name == "n1" and running.start_time


def test_finish_records_outcome_and_releases_allocation(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    outcome = jobs.Ending(jobs.JobState.FAILED, jobs.Reason.NON_ZERO_EXIT, exit_code=3,
                          usage=jobs.Usage(cpu_time_user_s=1.5, max_rss_kb=1000))
    assert repository.finish_job(job.id, outcome) is True
    assert repository.finish_job(job.id, outcome) is False
    done = repository.get(job.id)
    assert (done.state, done.exit_code, done.exit_code_text, done.usage.max_rss_kb) == (jobs.JobState.FAILED, 3, "3:0", 1000)
    assert done.end_time is not None
    assert repository.unreleased_by_node() == {}


def test_requeue_returns_job_to_pending_and_counts_restart(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    requeued = repository.requeue_running(job.id, "test")
    again = repository.get(job.id)
    assert requeued == again  # the row as it is now, from the UPDATE itself
    assert (again.state, again.restart_count, again.reason, again.reason_message) == (
        jobs.JobState.PENDING, 1, jobs.Reason.REQUEUED, "test")
    assert repository.requeue_running(job.id, "again") is None  # no longer RUNNING: nothing matched
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
    assert repository.delete_pending_many([pending.id]) == 1
    assert repository.delete_pending_many([running.id]) == 0
    assert repository.get_many([pending.id, running.id])[0].id == running.id


def test_release_orphaned_allocations(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    assert repository.release_orphaned_allocations() == 0
    repository.requeue_running(job.id, "x")
    assert repository.release_orphaned_allocations() == 0  # requeue already released it
    assert repository.unreleased_by_node() == {}


def test_a_reason_message_is_stored_beside_its_code_and_cut_once(repository: JobRepository) -> None:
    job = repository.add_job(spec("true"))
    repository.start_jobs([_start(job.id)])
    repository.finish_job(job.id, jobs.Ending(jobs.JobState.FAILED, jobs.Reason.LAUNCH_FAILED, "x" * 600, exit_code=1))
    ended = repository.get(job.id)
    assert (ended.reason, len(ended.reason_message)) == (jobs.Reason.LAUNCH_FAILED, MAX_REASON_MESSAGE)


def test_allocations_of_a_multi_node_job_read_back_as_one(repository: JobRepository) -> None:
    a, b = node("a", 32, 65536, ray_node_id="ray-a"), node("b", 16, 8192, 1, ray_node_id="ray-b")
    repository.replace_nodes([a, b])
    job = repository.add_job(spec("true", nodes=2, cpus_per_task=4))
    repository.start_jobs([Allocation(job.id, (b, a), Resources(4, 1024))])
    assert repository.unreleased_allocations() == [Allocation(job.id, (b, a), Resources(4, 1024))]
    assert repository.unreleased_by_node() == {"ray-a": Resources(4, 1024), "ray-b": Resources(4, 1024)}
    assert repository.get(job.id).node_list == "b,a"


def test_nodes_are_replaced_as_a_set(repository: JobRepository) -> None:
    a = node("a", 32, 65536, 0, {"partition": "x"}, ray_node_id="ray-a")
    b = node("b", 8, 1024, 1, {}, ray_node_id="ray-b")
    repository.replace_nodes([a, b])
    assert [n.name for n in repository.nodes()] == ["a", "b"]
    repository.replace_nodes([b])
    assert [n.name for n in repository.nodes()] == ["b"]
    assert [n.name for n in repository.nodes(alive_only=False)] == ["a", "b"]


def test_pending_jobs_read_back_share_their_repeated_text_and_stay_small(repository: JobRepository) -> None:
    """The scheduler holds every pending job (100,000 of them in a deep backlog): a job read from
    the database shares the text other jobs repeat (script, user, partition, directory) and, in
    the ledger, costs under 2,500 bytes of Python memory (it cost 3,900 when each row carried its
    own copies and every object its own __dict__)."""
    script = "#!/bin/bash\n" + "echo step\n" * 40
    ids = [job.id for job in repository.add_jobs([spec(script, name="many", memory_per_node_mb=100)] * 2000)]
    first, second = repository.get_many(ids[:2])
    assert first.spec.script == script and first.spec.script is second.spec.script
    assert first.spec.user is second.spec.user and first.spec.working_dir is second.spec.working_dir
    assert first.stdout_path != second.stdout_path

    tracemalloc.start()
    try:
        ledger = Ledger()
        for job in repository.get_many(ids):
            ledger.add_pending(job, {f"{job.id}-0"}, 100)
        assert [c.job_id for c in ledger.ordered()] == sorted(ids)
        held_bytes, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held_bytes / len(ids) < 2500, f"{held_bytes / len(ids):.0f} bytes per pending job"
