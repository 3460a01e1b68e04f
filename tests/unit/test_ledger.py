"""conductor.scheduler.ledger: the scheduler's books, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from conductor import jobs
from conductor.resources import Allocation, Node, Resources
from conductor.scheduler.ledger import Ledger, RunningJob
from tests.helpers import spec

A, B = Node("ray-a", "a", Resources(32, 65536, 2)), Node("ray-b", "b", Resources(8, 8192))


def job(job_id: int, **fields: object) -> jobs.Job:
    return jobs.Job(id=job_id, spec=spec("true", **fields), state=jobs.JobState.PENDING, reason=jobs.Reason.NONE,
                    submit_time=datetime(2026, 12, 1, tzinfo=timezone.utc))


def run(ledger: Ledger, job_id: int, per_node: Resources, *nodes: Node, started_s: float = 100.0,
        **fields: object) -> RunningJob:
    running = RunningJob(job(job_id, **fields), Allocation(job_id, nodes, per_node), set(), started_s=started_s)
    ledger.running[job_id] = running
    return running


def test_usage_per_node_is_the_sum_of_running_allocations_on_each_of_their_nodes() -> None:
    ledger = Ledger()
    ledger.replace_nodes([A, B])
    run(ledger, 1, Resources(4, 1024, 1), A)
    run(ledger, 2, Resources(2, 512), A, B)  # a two-node job holds its request on both
    assert ledger.used() == {"ray-a": Resources(6, 1536, 1), "ray-b": Resources(2, 512)}
    assert ledger.cluster_cpus() == 40


def test_holds_carry_the_expected_end_with_kill_wait_and_none_without_a_limit() -> None:
    ledger = Ledger()
    run(ledger, 1, Resources(1), A, time_limit_s=60)
    run(ledger, 2, Resources(1), A)
    ends = {hold.allocation.job_id: hold.end_s for hold in ledger.holds(kill_wait_s=30)}
    assert ends == {1: 190.0, 2: None}


def test_candidates_are_in_policy_order_without_the_excluded() -> None:
    ledger = Ledger()
    for job_id, priority in ((1, 5), (2, 9), (3, 5)):
        ledger.add_pending(job(job_id), set(), priority)
    assert [c.job_id for c in ledger.ordered(excluded=[3])] == [2, 1]
    candidate = ledger.pending[1].candidate
    assert (candidate.per_node, candidate.nodes) == (Resources(1, 0), 1)


def test_a_pending_job_keeps_its_parsed_dependency_and_a_bad_one_is_refused() -> None:
    ledger = Ledger()
    pending = ledger.add_pending(job(4, dependency="afterok:1:2"), {"e1"}, 0)
    assert pending.dependency is not None and pending.dependency.job_ids == {1, 2}
    assert ledger.add_pending(job(5, dependency="afterok:1:2"), set(), 0).dependency is pending.dependency
    with pytest.raises(ValueError):
        ledger.add_pending(job(6, dependency="afterwards:1"), set(), 0)


def test_array_tasks_running_are_counted_per_array() -> None:
    ledger = Ledger()
    run(ledger, 10, Resources(1), A, array_job_id=10, array_task_id=0)
    run(ledger, 11, Resources(1), A, array_job_id=10, array_task_id=1)
    run(ledger, 12, Resources(1), A)
    assert ledger.array_running() == {10: 2}


def test_a_node_set_change_is_reported_once_and_lost_nodes_are_named() -> None:
    ledger = Ledger()
    assert ledger.replace_nodes([A, B]) is True
    assert ledger.replace_nodes([B, A]) is False
    assert ledger.replace_nodes([A, replace(B, capacity=Resources(16, 8192))]) is True  # resized
    running = run(ledger, 1, Resources(1), A, B)
    ledger.replace_nodes([A])
    assert ledger.lost_nodes(running) == ["b"]
    assert ledger.holder(1) is running and ledger.holder(2) is None


def test_the_order_is_kept_between_reads_and_follows_arrivals_departures_and_new_priorities() -> None:
    ledger = Ledger()
    for job_id, priority in ((1, 5), (2, 9), (3, 5)):
        ledger.add_pending(job(job_id), set(), priority)
    assert [c.job_id for c in ledger.ordered()] == [2, 1, 3]
    ledger.add_pending(job(4), set(), 7)  # arrives between 2 and 1
    del ledger.pending[2]  # started, cancelled...: skipped from now on
    ledger.reprioritise(3, 10)
    assert [c.job_id for c in ledger.ordered()] == [3, 4, 1]
    ledger.add_pending(job(1, hold="user"), set(), 5)  # re-read (held): once, not twice
    assert [c.job_id for c in ledger.ordered(excluded=[4])] == [3, 1]
    assert ledger.conditional == {1}
    ledger.add_pending(job(1), set(), 5)  # released
    assert ledger.conditional == set()
    for job_id in range(10, 3000):  # entries of departed jobs are dropped once they outnumber the rest
        ledger.add_pending(job(job_id), set(), 0)
        del ledger.pending[job_id]
    assert [c.job_id for c in ledger.ordered()] == [3, 4, 1]
    assert len(ledger._order) < 2 * len(ledger.pending) + 1024


def test_ordered_is_read_lazily() -> None:
    ledger = Ledger()
    for job_id in range(1, 6):
        ledger.add_pending(job(job_id), set(), 0)
    reader = ledger.ordered()
    assert [next(reader).job_id, next(reader).job_id] == [1, 2]


def test_partitions_grow_as_jobs_arrive_and_shrink_only_when_recounted() -> None:
    ledger = Ledger()
    ledger.add_pending(job(1, partition="cpu"), set(), 0)
    ledger.add_pending(job(2, partition="gpu"), set(), 0)
    assert ledger.partitions() == {"cpu", "gpu"}
    del ledger.pending[2]  # started: its partition may linger (a quick pass then reads further)
    assert ledger.partitions() >= {"cpu"}
    ledger.recount_partitions()
    assert ledger.partitions() == {"cpu"}
    ledger.add_pending(job(3, partition="gpu"), set(), 0)
    assert ledger.partitions() == {"cpu", "gpu"}
