"""The autoscaler's demand: which pending jobs no live node can hold, as bundles, and when to send them."""

from __future__ import annotations

from dataclasses import replace

from conductor import partitions
from conductor.jobs import Reason
from conductor.policy import Candidate
from conductor.resources import Resources
from conductor.scheduler import demand
from tests.helpers import node

GIB = 1024**3


def job(job_id: int, cpus: int = 1, memory_mb: int = 1024, *, partition: str = "batch", nodes: int = 1,
        gpus: int = 0, exclusive: bool = False) -> Candidate:
    return Candidate(job_id, partition, Resources(cpus, memory_mb, gpus), priority=0, submit_order=job_id,
                     nodes=nodes, exclusive=exclusive)


BATCH = partitions.parse("BATCH", "Label=batch Default=YES")
WIDE = partitions.parse("WIDE", "Label=wide MaxNodes=2 MaxCPUsPerJob=8")
HEAD = replace(node("head", 4, 8192, labels={"conductor.io/partition": "batch"}), partitions=frozenset({"batch"}))


def test_a_job_of_a_partition_without_live_nodes_is_unmet_and_asks_for_one_more_node() -> None:
    waiting = [(job(1, 2, 2048, partition="wide"), Reason.PARTITION_CONFIG)]
    found = demand.unmet(waiting, [HEAD], {}, [BATCH, WIDE])
    assert [j.job_id for j in found] == [1]
    # The live node's whole capacity first, so the job's share can only fit on a new node.
    assert demand.request([HEAD], found) == [{"CPU": 4.0, "memory": 8.0 * GIB}, {"CPU": 2.0, "memory": 2.0 * GIB}]


def test_a_job_that_fits_the_free_room_is_not_unmet_whatever_its_reason() -> None:
    # Waiting for a worker slot (WORKER_CONCURRENCY) or behind a reservation: no node is missing.
    waiting = [(job(1, 2), Reason.RESOURCES), (job(2, 4), Reason.PRIORITY)]
    assert demand.unmet(waiting, [HEAD], {HEAD.ray_node_id: Resources(0, 0)}, [BATCH]) == []
    assert demand.request([HEAD], []) == []


def test_a_job_that_does_not_fit_what_is_free_now_is_unmet() -> None:
    used = {HEAD.ray_node_id: Resources(3, 1024)}
    found = demand.unmet([(job(1, 2), Reason.RESOURCES), (job(2, 1), Reason.RESOURCES)], [HEAD], used, [BATCH])
    assert [j.job_id for j in found] == [1]


def test_jobs_blocked_for_other_reasons_ask_for_nothing() -> None:
    full = {HEAD.ray_node_id: Resources(4, 8192)}
    waiting = [(job(i, 1), reason) for i, reason in enumerate(
        [Reason.HELD_USER, Reason.DEPENDENCY, Reason.BEGIN_TIME, Reason.ARRAY_TASK_LIMIT, Reason.PARTITION_DOWN])]
    assert demand.unmet(waiting, [HEAD], full, [BATCH]) == []


def test_partition_limits_bound_the_demand() -> None:
    down = partitions.parse("WIDE", "Label=wide State=DOWN")
    waiting = [(job(1, 1, partition="wide"), Reason.PARTITION_CONFIG)]
    assert demand.unmet(waiting, [HEAD], {}, [BATCH, down]) == []
    over = [(job(2, 1, partition="wide", nodes=3), Reason.PARTITION_CONFIG),  # MaxNodes=2
            (job(3, 5, partition="wide", nodes=2), Reason.PARTITION_CONFIG),  # 10 CPUs > MaxCPUsPerJob=8
            (job(4, 1, partition="nosuch"), Reason.PARTITION_CONFIG)]  # not a configured partition
    assert demand.unmet(over, [HEAD], {}, [BATCH, WIDE]) == []
    # Open partitions (none configured): any name is demand.
    assert [j.job_id for j in demand.unmet([(job(5, 8, partition="any"), Reason.PARTITION_CONFIG)], [HEAD], {}, [])] == [5]


def test_a_multi_node_job_asks_for_one_bundle_per_node_and_gpus_are_counted() -> None:
    found = demand.unmet([(job(1, 2, 1024, partition="wide", nodes=2, gpus=1), Reason.PARTITION_CONFIG)],
                         [HEAD], {}, [BATCH, WIDE])
    shares = demand.request([HEAD], found)[1:]
    assert shares == [{"CPU": 2.0, "memory": 1.0 * GIB, "GPU": 1.0}] * 2


def test_an_exclusive_job_needs_an_empty_node() -> None:
    used = {HEAD.ray_node_id: Resources(1, 0)}
    assert [j.job_id for j in demand.unmet([(job(1, 1, exclusive=True), Reason.RESOURCES)], [HEAD], used, [BATCH])] == [1]
    assert demand.unmet([(job(1, 1, exclusive=True), Reason.RESOURCES)], [HEAD], {}, [BATCH]) == []


def test_the_bundles_are_bounded_in_priority_order() -> None:
    waiting = [(job(i, 1, partition="wide", nodes=2), Reason.PARTITION_CONFIG) for i in range(demand.MAX_BUNDLES)]
    found = demand.unmet(waiting, [], {}, [WIDE])
    assert [j.job_id for j in found] == list(range(demand.MAX_BUNDLES // 2))


def test_requests_are_sent_on_change_and_withdrawn_after_the_hold() -> None:
    requests = demand.Requests()
    assert requests.next([], 0.0) is None  # nothing asked yet: nothing to withdraw
    ask = [{"CPU": 4.0}, {"CPU": 2.0}]
    assert requests.next(ask, 1.0) == ask
    requests.done(ask)
    assert requests.next([dict(b) for b in ask], 2.0) is None  # unchanged: not sent again
    assert requests.next([], 2.0 + demand.HOLD_S - 1) is None  # held a while after the last demand
    assert requests.next([], 2.0 + demand.HOLD_S) == []  # then withdrawn
    requests.done([])
    assert requests.next([], 100.0) is None


def test_a_failed_send_is_tried_again() -> None:
    requests = demand.Requests()
    ask = [{"CPU": 1.0}]
    assert requests.next(ask, 0.0) == ask  # not recorded as sent (request_resources raised)
    assert requests.next(ask, 1.0) == ask
