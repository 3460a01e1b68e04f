"""--exclusive in the policy: whole nodes, placed only where nothing runs, and nothing placed beside them."""

from __future__ import annotations

from dataclasses import replace

from conductor.jobs import Reason
from conductor.policy import Hold, plan_pass
from conductor.resources import Allocation, Resources
from tests.unit.test_policy import job, node, started, used


def exclusive(job_id: int, cpus: int = 1, memory_mb: int = 0, **fields: object):  # noqa: ANN201
    return replace(job(job_id, cpus, memory_mb), exclusive=True, **fields)


def test_an_exclusive_job_holds_every_cpu_and_gpu_of_its_node_and_only_its_memory() -> None:
    plan = plan_pass([exclusive(1, 2, 1024)], [node("a", 8, 16384, gpus=2)], 10)
    assert started(plan) == [(1, "a")]
    assert plan.starts[0].per_node == Resources(8, 1024, 2)


def test_nothing_is_placed_beside_it_in_the_same_pass() -> None:
    plan = plan_pass([exclusive(1), job(2)], [node("a", 8, 16384)], 10)
    assert started(plan) == [(1, "a")]
    assert plan.reasons[2] is Reason.RESOURCES


def test_nothing_is_placed_beside_a_running_one() -> None:
    running = Resources(8, 0, 0)  # what the ledger derives from the exclusive job's allocation
    plan = plan_pass([job(2)], [node("a", 8, 16384)], 10, used=used(a=running))
    assert started(plan) == [] and plan.reasons[2] is Reason.RESOURCES


def test_it_starts_only_on_a_node_where_nothing_runs() -> None:
    nodes = [node("a", 8, 16384), node("b", 8, 16384)]
    plan = plan_pass([exclusive(1)], nodes, 10, used=used(a=Resources(1)))
    assert started(plan) == [(1, "b")]
    waiting = plan_pass([exclusive(1)], nodes, 10, used=used(a=Resources(1), b=Resources(1)))
    assert started(waiting) == [] and waiting.reasons[1] is Reason.RESOURCES


def test_a_multi_node_exclusive_job_takes_nodes_of_one_shape_smallest_first() -> None:
    nodes = [node("big", 16, 32768), node("s1", 4, 8192), node("s2", 4, 8192)]
    plan = plan_pass([exclusive(1, nodes=2)], nodes, 10)
    assert sorted(started(plan)[0][1].split(",")) == ["s1", "s2"]
    assert plan.starts[0].per_node.cpus == 4


def test_one_no_node_can_hold_is_partition_config() -> None:
    plan = plan_pass([exclusive(1, 16)], [node("a", 8, 16384)], 10)
    assert plan.reasons[1] is Reason.PARTITION_CONFIG


def test_backfill_reserves_the_whole_node_for_a_waiting_exclusive_job() -> None:
    a = node("a", 8, 16384)
    running = [Hold(Allocation(9, (a,), Resources(1)), end_s=100.0)]
    plan = plan_pass([exclusive(1, time_limit_s=50), replace(job(2), time_limit_s=500)], [a], 10,
                     used=used(a=Resources(1)), running=running, now_s=0.0, backfill=True)
    assert started(plan) == []  # job 2 would run past the exclusive job's reserved start (t=100)
    assert plan.expected_start_s[1] == 100.0
    short = plan_pass([exclusive(1, time_limit_s=50), replace(job(2), time_limit_s=50)], [a], 10,
                      used=used(a=Resources(1)), running=running, now_s=0.0, backfill=True)
    assert started(short) == [(2, "a")]  # it ends before the reservation
