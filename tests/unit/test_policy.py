"""conductor.policy: one scheduling pass (order, concurrency cap, best fit, partition blocking, backfill)."""

from __future__ import annotations

import dataclasses

from conductor.jobs import Reason
from conductor.policy import Candidate, Hold, best_fit, order_key, plan_pass
from conductor.resources import NOTHING, Allocation, Node, Resources


def job(job_id: int, cpus: int = 1, memory_mb: int = 0, *, partition: str = "default", priority: int = 0,
        submit_order: float | None = None, gpus: int = 0) -> Candidate:
    return Candidate(job_id=job_id, partition=partition, per_node=Resources(cpus, memory_mb, gpus),
                     priority=priority, submit_order=float(job_id) if submit_order is None else submit_order)


def node(name: str, cpus: int, memory_mb: int, *, gpus: int = 0, partitions: frozenset[str] | None = None) -> Node:
    return Node(ray_node_id=f"ray-{name}", name=name, capacity=Resources(cpus, memory_mb, gpus),
                partitions=partitions)


def used(**by_name: Resources) -> dict[str, Resources]:
    """What nodes (by name) hold before the pass."""
    return {f"ray-{name}": held for name, held in by_name.items()}


def busy(name: str, cpus: int, end_s: float | None) -> Hold:
    """A running job holding ``cpus`` on node ``name`` until ``end_s``."""
    return Hold(Allocation(0, (node(name, 0, 0),), Resources(cpus)), end_s)


def started(plan) -> list[tuple[int, str]]:
    return [(allocation.job_id, ",".join(allocation.node_names)) for allocation in plan.starts]


def held_after(plan, name: str, before: dict[str, Resources] | None = None) -> Resources:
    """What node ``name`` holds once the pass's starts are added to what it held before."""
    total = (before or {}).get(f"ray-{name}", NOTHING)
    for allocation in plan.starts:
        total += allocation.per_node if name in allocation.node_names else NOTHING
    return total


# ---- order -----------------------------------------------------------------------------------


def test_order_key_is_priority_then_submit_order_then_id() -> None:
    jobs = [
        job(1, priority=0, submit_order=10.0),
        job(2, priority=5, submit_order=30.0),
        job(3, priority=5, submit_order=20.0),
        job(4, priority=0, submit_order=5.0),
        job(6, priority=0, submit_order=5.0),
        job(5, priority=0, submit_order=5.0),
        job(7, priority=-1, submit_order=1.0),
    ]
    assert [c.job_id for c in sorted(jobs, key=order_key)] == [3, 2, 4, 5, 6, 1, 7]


def test_jobs_start_in_order_key_order() -> None:
    jobs = sorted([job(1, priority=0), job(2, priority=9), job(3, priority=0, submit_order=0.5), job(4, priority=9)],
                  key=order_key)
    plan = plan_pass(jobs, [node("n", 64, 65536)], free_slots=10)
    assert [a.job_id for a in plan.starts] == [2, 4, 3, 1]
    assert plan.reasons == {}


def test_higher_priority_job_gets_the_scarce_resources() -> None:
    jobs = sorted([job(1, cpus=4), job(2, cpus=4, priority=1)], key=order_key)
    plan = plan_pass(jobs, [node("n", 4, 1024)], free_slots=10)
    assert started(plan) == [(2, "n")]
    assert plan.reasons == {1: Reason.RESOURCES}


# ---- concurrency cap ---------------------------------------------------------------------------


def test_free_slots_cap_the_number_of_starts() -> None:
    jobs = [job(1, partition="a"), job(2, partition="b"), job(3, partition="c"), job(4, partition="d")]
    plan = plan_pass(jobs, [node("n", 64, 65536)], free_slots=2)
    assert started(plan) == [(1, "n"), (2, "n")]
    assert plan.reasons == {3: Reason.RESOURCES, 4: Reason.RESOURCES}


def test_no_free_slot_starts_nothing() -> None:
    jobs = [job(1, partition="a"), job(2, partition="b")]
    nodes = [node("n", 64, 65536)]
    plan = plan_pass(jobs, nodes, free_slots=0)
    assert plan.starts == []
    assert plan.reasons == {1: Reason.RESOURCES, 2: Reason.RESOURCES}
    assert held_after(plan, "n") == NOTHING


def test_capped_jobs_of_one_partition_wait_behind_the_first_one() -> None:
    """The first job past the cap waits for Resources; lower jobs of its partition wait for Priority."""
    plan = plan_pass([job(1), job(2), job(3), job(4)], [node("n", 64, 65536)], free_slots=2)
    assert started(plan) == [(1, "n"), (2, "n")]
    assert plan.reasons == {3: Reason.RESOURCES, 4: Reason.PRIORITY}


# ---- best fit ----------------------------------------------------------------------------------


def test_best_fit_picks_the_tightest_node() -> None:
    nodes = [node("big", 16, 65536), node("small", 4, 65536), node("medium", 8, 65536)]
    free = {n.ray_node_id: n.capacity for n in nodes}
    assert best_fit(nodes, free, Resources(3, 1024)).name == "small"
    assert best_fit(nodes, free, Resources(5, 1024)).name == "medium"
    assert best_fit(nodes, free, Resources(9, 1024)).name == "big"
    assert best_fit(nodes, free, Resources(17, 1024)) is None


def test_best_fit_breaks_cpu_ties_by_memory_then_name() -> None:
    nodes = [node("b", 8, 32768), node("c", 8, 8192), node("a", 8, 8192)]
    free = {n.ray_node_id: n.capacity for n in nodes}
    assert best_fit(nodes, free, Resources(2, 4096)).name == "a"
    assert best_fit(nodes, free, Resources(2, 16384)).name == "b"


def test_best_fit_counts_what_is_already_used() -> None:
    nodes = [node("roomy", 16, 65536), node("empty", 8, 65536)]
    free = {"ray-roomy": Resources(2, 65536), "ray-empty": Resources(8, 65536)}
    assert best_fit(nodes, free, Resources(2, 1024)).name == "roomy"
    assert best_fit(nodes, free, Resources(3, 1024)).name == "empty"


def test_plan_places_each_job_on_the_tightest_node_and_books_it() -> None:
    nodes = [node("big", 16, 65536), node("small", 4, 16384)]
    plan = plan_pass([job(1, cpus=3, memory_mb=1000), job(2, cpus=2, memory_mb=1000), job(3, cpus=1)], nodes,
                     free_slots=10)
    assert started(plan) == [(1, "small"), (2, "big"), (3, "small")]
    assert held_after(plan, "big") == Resources(2, 1000)
    assert held_after(plan, "small") == Resources(4, 1000)


# ---- jobs no node can hold ---------------------------------------------------------------------


def test_job_larger_than_any_node_gets_partition_config_and_blocks_nobody() -> None:
    nodes = [node("a", 8, 16384), node("b", 4, 65536)]
    jobs = [job(1, cpus=16), job(2, cpus=1, memory_mb=100_000), job(3, cpus=8, memory_mb=32768), job(4, cpus=2)]
    plan = plan_pass(jobs, nodes, free_slots=10)
    # job 3 fits a's CPUs and b's memory, but no single node has both.
    assert plan.reasons == {1: Reason.PARTITION_CONFIG, 2: Reason.PARTITION_CONFIG, 3: Reason.PARTITION_CONFIG}
    assert started(plan) == [(4, "b")]


def test_no_nodes_means_partition_config_for_everyone() -> None:
    plan = plan_pass([job(1), job(2, partition="x")], [], free_slots=4)
    assert plan.starts == []
    assert plan.reasons == {1: Reason.PARTITION_CONFIG, 2: Reason.PARTITION_CONFIG}


# ---- partition blocking ------------------------------------------------------------------------


def test_waiting_job_blocks_lower_jobs_of_its_partition_only() -> None:
    before = used(n=Resources(12))
    jobs = [job(1, cpus=8, partition="a"), job(2, cpus=1, partition="a"), job(3, cpus=1, partition="b"),
            job(4, cpus=1, partition="a"), job(5, cpus=2, partition="b")]
    plan = plan_pass(jobs, [node("n", 16, 65536)], free_slots=10, used=before)
    assert plan.reasons == {1: Reason.RESOURCES, 2: Reason.PRIORITY, 4: Reason.PRIORITY}
    assert started(plan) == [(3, "n"), (5, "n")]
    assert held_after(plan, "n", before).cpus == 15


def test_jobs_above_the_waiting_one_still_start() -> None:
    nodes = [node("n", 4, 65536)]
    plan = plan_pass([job(1, cpus=2), job(2, cpus=4), job(3, cpus=1)], nodes, free_slots=10)
    assert started(plan) == [(1, "n")]
    assert plan.reasons == {2: Reason.RESOURCES, 3: Reason.PRIORITY}


# ---- memory ------------------------------------------------------------------------------------


def test_memory_is_checked_as_well_as_cpus() -> None:
    before = used(n=Resources(0, 3000))
    plan = plan_pass([job(1, cpus=1, memory_mb=2048), job(2, cpus=1, memory_mb=1096, partition="b")],
                     [node("n", 16, 4096)], free_slots=10, used=before)
    assert plan.reasons == {1: Reason.RESOURCES}
    assert started(plan) == [(2, "n")]
    assert held_after(plan, "n", before).memory_mb == 4096


def test_memory_booked_by_earlier_starts_counts_in_the_same_pass() -> None:
    nodes = [node("n", 16, 8192)]
    plan = plan_pass([job(1, memory_mb=6000), job(2, memory_mb=6000), job(3, memory_mb=2192, partition="b")], nodes,
                     free_slots=10)
    assert started(plan) == [(1, "n"), (3, "n")]
    assert plan.reasons == {2: Reason.RESOURCES}


def test_resources_arithmetic_and_fit() -> None:
    capacity, held = Resources(8, 1000), Resources(6, 900)
    free = capacity - held
    assert free == Resources(2, 100)
    assert Resources(2, 100).fits_in(free) and not Resources(3, 100).fits_in(free)
    assert not Resources(2, 101).fits_in(free)
    assert Resources(8, 1000).fits_in(capacity) and not Resources(9, 1).fits_in(capacity)
    assert not Resources(1, 1001).fits_in(capacity) and not Resources(0, 0, 1).fits_in(capacity)
    assert Resources(2, 512, 1).times(3) == Resources(6, 1536, 3) and held + free == capacity


# ---- partitions, GPUs, several nodes ----------------------------------------------------------


def timed(job_id: int, cpus: int, limit_s: float | None, **kw) -> Candidate:
    base = job(job_id, cpus, **{k: v for k, v in kw.items() if k in ("partition", "priority", "memory_mb", "gpus")})
    extra = {k: v for k, v in kw.items() if k == "nodes"}
    return dataclasses.replace(base, time_limit_s=limit_s, **extra)


def test_a_job_runs_only_on_nodes_of_its_partition() -> None:
    cpu = node("cpu", 64, 0, partitions=frozenset({"batch"}))
    small = node("small", 4, 0, partitions=frozenset({"debug"}))
    plan = plan_pass([job(1, 2, partition="debug"), job(2, 2, partition="batch")], [cpu, small], 10)
    assert started(plan) == [(1, "small"), (2, "cpu")]


def test_a_partition_whose_nodes_are_all_too_small_gives_partition_config() -> None:
    small = node("small", 4, 0, partitions=frozenset({"debug"}))
    big = node("big", 64, 0, partitions=frozenset({"batch"}))
    plan = plan_pass([job(1, 8, partition="debug"), job(2, 8, partition="batch")], [small, big], 10)
    assert plan.reasons == {1: Reason.PARTITION_CONFIG}
    assert started(plan) == [(2, "big")]


def test_gpu_jobs_go_only_to_gpu_nodes_and_cpu_jobs_prefer_plain_nodes() -> None:
    gpu = node("gpu", 8, 0, gpus=2)
    plain = node("plain", 8, 0)
    plan = plan_pass([job(1, 2), timed(2, 2, None, gpus=1), timed(3, 2, None, gpus=2)], [gpu, plain], 10)
    assert started(plan) == [(1, "plain"), (2, "gpu")]
    assert plan.reasons == {3: Reason.RESOURCES}
    assert (held_after(plan, "gpu").gpus, held_after(plan, "plain").gpus) == (1, 0)


def test_a_two_node_job_gets_two_distinct_nodes_at_once_or_none() -> None:
    before = used(c=Resources(6))
    plan = plan_pass([timed(1, 4, None, nodes=2), timed(2, 4, None, nodes=3)], [node(n, 8, 0) for n in "abc"], 10,
                     used=before)
    assert started(plan) == [(1, "a,b")]
    assert plan.reasons == {2: Reason.RESOURCES}
    assert [held_after(plan, n, before).cpus for n in "abc"] == [4, 4, 6]


def test_a_job_needing_more_nodes_than_its_partition_has_gives_partition_config() -> None:
    plan = plan_pass([timed(1, 1, None, nodes=3)], [node("a", 8, 0), node("b", 8, 0)], 10)
    assert plan.reasons == {1: Reason.PARTITION_CONFIG}


# ---- backfill ---------------------------------------------------------------------------------


def test_without_backfill_a_small_job_waits_behind_a_blocked_big_one() -> None:
    n, before = node("n", 32, 0), used(n=Resources(24))
    plan = plan_pass([timed(1, 16, 100), timed(2, 4, 10)], [n], 10, used=before)
    assert plan.starts == []
    assert plan.reasons == {1: Reason.RESOURCES, 2: Reason.PRIORITY}


def test_backfill_starts_a_short_job_that_ends_before_the_reservation() -> None:
    n, before = node("n", 32, 0), used(n=Resources(24))
    running = [busy("n", 24, 60.0)]
    plan = plan_pass([timed(1, 16, 100), timed(2, 4, 10), timed(3, 4, 120)], [n], 10, used=before,
                     running=running, now_s=0.0, backfill=True)
    # job 1 is reserved at t=60; job 2 ends at 10 (fine); job 3 would still hold 4 CPUs at t=60,
    # leaving 32 - 4 = 28 >= 16 for job 1: it fits beside the reservation too.
    assert started(plan) == [(2, "n"), (3, "n")]
    assert plan.expected_start_s == {1: 60.0}
    assert plan.reasons == {1: Reason.RESOURCES}


def test_backfill_never_starts_a_job_that_would_delay_the_reservation() -> None:
    n, before = node("n", 32, 0), used(n=Resources(24))
    running = [busy("n", 24, 60.0)]
    plan = plan_pass([timed(1, 30, 100), timed(2, 4, 10), timed(3, 4, 120), timed(4, 4, None)], [n], 10, used=before,
                     running=running, now_s=0.0, backfill=True)
    # job 1 needs 30 of 32 at t=60: job 2 (ends at 10) may run, jobs 3 and 4 would overlap it.
    assert started(plan) == [(2, "n")]
    assert plan.expected_start_s == {1: 60.0, 3: 160.0, 4: 160.0}  # each after job 1 ends
    assert plan.reasons == {1: Reason.RESOURCES, 3: Reason.PRIORITY, 4: Reason.PRIORITY}


def test_backfill_reserves_for_every_blocked_job_in_priority_order() -> None:
    n, before = node("n", 32, 0), used(n=Resources(32))
    running = [busy("n", 16, 10.0), busy("n", 16, 50.0)]
    plan = plan_pass([timed(1, 32, 100), timed(2, 16, 30)], [n], 10, used=before, running=running, now_s=0.0, backfill=True)
    # job 1 can have the whole node only at 50; job 2 fits between 10 and 40 before it.
    assert plan.expected_start_s == {1: 50.0, 2: 10.0}
    assert plan.starts == []


def test_running_jobs_without_a_limit_make_their_cpus_unavailable_forever() -> None:
    n, before = node("n", 32, 0), used(n=Resources(24))
    plan = plan_pass([timed(1, 16, 100), timed(2, 8, None)], [n], 10, used=before,
                     running=[busy("n", 24, None)], now_s=0.0, backfill=True)
    assert 1 not in plan.expected_start_s  # it can never be reserved, so it holds nothing back
    assert started(plan) == [(2, "n")]


def test_a_job_past_its_limit_is_expected_to_end_very_soon() -> None:
    n, before = node("n", 32, 0), used(n=Resources(32))
    plan = plan_pass([timed(1, 32, 100)], [n], 10, used=before, running=[busy("n", 32, 5.0)], now_s=50.0,
                     backfill=True)
    assert plan.expected_start_s == {1: 51.0}


def test_backfill_reserves_several_nodes_for_a_multi_node_job() -> None:
    a, b, before = node("a", 8, 0), node("b", 8, 0), used(a=Resources(8), b=Resources(8))
    running = [busy("a", 8, 20.0), busy("b", 8, 40.0)]
    plan = plan_pass([timed(1, 8, 100, nodes=2), timed(2, 8, 10)], [a, b], 10, used=before, running=running, now_s=0.0,
                     backfill=True)
    assert plan.expected_start_s[1] == 40.0
    assert plan.expected_start_s[2] == 20.0  # fits on a between 20 and 30, before the two-node job


def test_reserve_depth_bounds_the_reservations_made() -> None:
    n, before = node("n", 4, 0), used(n=Resources(4))
    pending = [timed(i, 4, 10) for i in range(1, 6)]
    plan = plan_pass(pending, [n], 10, used=before, running=[busy("n", 4, 5.0)], now_s=0.0, backfill=True,
                     reserve_depth=2)
    assert sorted(plan.expected_start_s) == [1, 2]


def test_past_the_reserve_depth_lower_jobs_of_a_blocked_partition_are_not_tested() -> None:
    n, before = node("n", 4, 0), used(n=Resources(3))
    pending = [timed(1, 4, 10), timed(2, 4, 10), timed(3, 1, 1)]  # job 3 would fit now and end in time
    plan = plan_pass(pending, [n], 10, used=before, running=[busy("n", 3, 5.0)], now_s=0.0, backfill=True,
                     reserve_depth=1)
    assert plan.starts == [] and plan.reasons == {1: Reason.RESOURCES, 2: Reason.PRIORITY, 3: Reason.PRIORITY}
    deeper = plan_pass(pending, [n], 10, used=before, running=[busy("n", 3, 5.0)],
                       now_s=0.0, backfill=True, reserve_depth=3)  # both reserved, then job 3 tested
    assert started(deeper) == [(3, "n")]


# ---- quick passes (depth) ---------------------------------------------------------------------


def _counting(candidates):
    """The candidates, counting how many the pass read."""
    read = [0]

    def reader():
        for candidate in candidates:
            read[0] += 1
            yield candidate
    return reader(), read


def test_a_quick_pass_stops_when_no_slot_is_left_and_leaves_the_rest_without_a_reason() -> None:
    pending, read = _counting([job(i) for i in range(1, 10_001)])
    plan = plan_pass(pending, [node("n", 64, 65536)], free_slots=3, depth=1000, partitions={"default"})
    assert started(plan) == [(1, "n"), (2, "n"), (3, "n")]
    assert not plan.complete and plan.reasons == {} and read[0] == 4
    full = plan_pass([job(i) for i in range(1, 10_001)], [node("n", 64, 65536)], free_slots=3)
    assert full.complete and started(full) == started(plan) and len(full.reasons) == 9997


def test_a_quick_pass_stops_once_every_partition_is_blocked_and_reservations_are_made() -> None:
    jobs = [job(1, cpus=8)] + [job(i, cpus=4) for i in range(2, 5001)]
    pending, read = _counting(jobs)
    nodes = [node("n", 8, 65536)]
    plan = plan_pass(pending, nodes, free_slots=100, used=used(n=Resources(4)), depth=1000, partitions={"default"},
                     backfill=True, running=[busy("n", 4, 100.0)], reserve_depth=10)
    full = plan_pass(jobs, nodes, free_slots=100, used=used(n=Resources(4)), backfill=True,
                     running=[busy("n", 4, 100.0)], reserve_depth=10)
    assert not plan.complete and read[0] == 11  # the blocked job, 9 more reservations, then stop
    assert started(plan) == started(full)
    assert {k: v for k, v in full.reasons.items() if k in plan.reasons} == plan.reasons
    assert plan.expected_start_s == full.expected_start_s


def test_a_quick_pass_reads_at_most_depth_jobs_and_a_partition_with_room_is_not_skipped() -> None:
    jobs = [job(i, partition="a") for i in range(1, 1500)] + [job(2000, partition="b")]
    nodes = [node("na", 1, 65536, partitions=frozenset({"a"})), node("nb", 1, 65536, partitions=frozenset({"b"}))]
    pending, read = _counting(jobs)
    plan = plan_pass(pending, nodes, free_slots=10, depth=1000, partitions={"a", "b"})
    assert started(plan) == [(1, "na")] and read[0] == 1001 and not plan.complete  # 2000 waits for a full pass
    assert started(plan_pass(jobs, nodes, free_slots=10)) == [(1, "na"), (2000, "nb")]
