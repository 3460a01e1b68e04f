"""conductor.scheduler.retirement: the books of keeper retirement (idle time, resting nodes, which a job wants)."""

from __future__ import annotations

from conductor.scheduler.retirement import Retirement, wanted
from tests.helpers import node, spec


def test_a_node_is_due_only_after_its_whole_idle_timeout_without_work() -> None:
    books = Retirement(idle_timeout_s=10)
    assert books.due(["a", "b"], busy={"b"}, now_s=0) == []
    assert books.due(["a", "b"], busy={"b"}, now_s=9) == []
    assert books.due(["a", "b"], busy=set(), now_s=10) == ["a"]  # b was busy at 9: its idle time began then
    assert books.due(["a", "b"], busy=set(), now_s=18) == ["a"]
    assert books.due(["a", "b"], busy=set(), now_s=19) == ["a", "b"]


def test_a_job_ending_there_starts_the_idle_time_again() -> None:
    books = Retirement(idle_timeout_s=10)
    books.due(["a"], busy=set(), now_s=0)
    books.touch(["a"], now_s=8)  # a short job ran between two looks
    assert books.due(["a"], busy=set(), now_s=12) == []
    assert books.due(["a"], busy=set(), now_s=18) == ["a"]


def test_retiring_then_retired_nodes_rest_until_woken_and_a_kept_one_does_not() -> None:
    books = Retirement(idle_timeout_s=1)
    books.retiring("a")
    books.retiring("b")
    assert books.resting("a") and books.resting("b") and books.retired_nodes() == set()
    books.retired("a")
    books.kept("b")
    assert books.retired_nodes() == {"a"} and not books.resting("b")
    books.wake("a")
    assert not books.resting("a")


def test_nodes_that_left_are_forgotten() -> None:
    books = Retirement(idle_timeout_s=1)
    books.retiring("a")
    books.retired("a")
    books.retiring("b")
    books.keep_only({"c"})
    assert not books.resting("a") and not books.resting("b")


def test_a_resting_node_is_wanted_by_a_job_of_its_partition_that_it_could_hold() -> None:
    from dataclasses import replace

    anything = node("r1", cpus=4)  # serves every partition (none configured)
    batch_only = replace(node("r2", cpus=16), partitions=frozenset({"batch"}))
    resting = [anything, batch_only]
    assert wanted(resting, [spec("true", cpus_per_task=2, partition="gpu")]) == ["ray-r1"]
    assert wanted(resting, [spec("true", cpus_per_task=8, partition="batch")]) == ["ray-r2"]  # r1: 4 CPUs
    assert wanted(resting, [spec("true", cpus_per_task=64, partition="batch")]) == []
    assert sorted(wanted(resting, [spec("true", partition="gpu"), spec("true", partition="batch")])) == [
        "ray-r1", "ray-r2"]
    assert wanted(resting, []) == []
