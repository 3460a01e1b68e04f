"""The scheduling decision, as a pure function: which pending jobs start now, where, and why the rest wait.

Pending jobs are taken in (priority high first, submit time, id) order.  A job may use
only the nodes of its partition; it starts when enough of them (``nodes``, one bundle
each) have its CPUs, memory and GPUs free and fewer than WORKER_CONCURRENCY jobs are in
flight, on the nodes where it fits most tightly (best fit).

Without backfill (Slurm's main scheduler): once a job of a partition must wait, lower jobs
of that partition wait too (reason Priority), so a large job is not starved by a stream of
small ones, at the price of idle CPUs.

With backfill (Slurm's backfill scheduler, conservative): a job that cannot start now gets a
reservation at the earliest time its nodes will be free, computed from the expected ends
(start + time limit) of running jobs, of jobs started in this pass and of the reservations
made before it.  A lower job starts now only if it fits beside every reservation for its
whole time limit, so it can never delay a higher job.  Only the first ``reserve_depth``
blocked jobs get reservations (Slurm's bf_max_job_test); once they are made, the lower jobs
of a partition with a waiting job are not tested this pass (reason Priority).

A job no set of live nodes of its partition could ever hold does not block anyone
(PartitionConfig).  Times are seconds on one clock (``now_s``); None means "no end".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Collection, Iterable, Mapping, Sequence

from conductor.dependencies import Verdict
from conductor.jobs import Reason
from conductor.resources import NOTHING, Allocation, Node, Resources

#: Reservations made per pass at most (Slurm's bf_max_job_test default is 500).
DEFAULT_RESERVE_DEPTH = 200
_FOREVER = math.inf


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the policy needs to know of a pending job: ``per_node`` on each of ``nodes`` nodes."""

    job_id: int
    partition: str
    per_node: Resources
    priority: int
    submit_order: float  #: submit time as a number; earlier first
    array_job_id: int | None = None
    array_max_running: int | None = None  #: the array's %N throttle
    nodes: int = 1
    #: Expected run time (the time limit, or the partition's default); None: no limit.
    time_limit_s: float | None = None
    #: --exclusive: whole nodes (all their CPUs and GPUs, its own memory), shared with no other job.
    exclusive: bool = False


@dataclass(frozen=True)
class Hold:
    """A running job's allocation until its expected end (start + time limit + KillWait; None: unknown)."""

    allocation: Allocation
    end_s: float | None = None


@dataclass
class Plan:
    """The outcome of one pass: allocations to start, and why each other job waits."""

    starts: list[Allocation] = field(default_factory=list)
    reasons: dict[int, Reason] = field(default_factory=dict)
    #: Blocked jobs that got a reservation: when they are expected to start (backfill only).
    expected_start_s: dict[int, float] = field(default_factory=dict)
    #: Whether every pending job was considered (a quick pass stops once nothing more can start).
    complete: bool = True
    #: Running tasks per array once this plan's starts run (for the %N throttle of later jobs).
    array_running: dict[int, int] = field(default_factory=dict)


def order_key(candidate: Candidate) -> tuple:
    return (-candidate.priority, candidate.submit_order, candidate.job_id)


def best_fit(nodes: Iterable[Node], free: Mapping[str, Resources], need: Resources) -> Node | None:
    """The node that holds ``need`` with the fewest CPUs (then MB) left over; None if none can."""
    fitting = [node for node in nodes if need.fits_in(free[node.ray_node_id])]
    if not fitting:
        return None
    return min(fitting, key=lambda n: _leftover(n, free[n.ray_node_id], need))


def _leftover(node: Node, free: Resources, need: Resources) -> tuple:
    # GPUs first: a CPU-only job should not take the CPUs of a GPU node while plain nodes are free.
    left = free - need
    return (left.gpus, left.cpus, left.memory_mb, node.name)


def blocked_reason(*, hold: str | None, begin_time: datetime | None, now: datetime,
                   dependency: Verdict | None) -> Reason | None:
    """Why a pending job may not start whatever the resources, or None when it may."""
    if hold:
        return Reason.HELD_ADMIN if hold == "admin" else Reason.HELD_USER
    if dependency is Verdict.NEVER:
        return Reason.DEPENDENCY_NEVER
    if dependency is Verdict.WAIT:
        return Reason.DEPENDENCY
    if begin_time is not None and begin_time > now:
        return Reason.BEGIN_TIME
    return None


def plan_pass(pending: Iterable[Candidate], nodes: Sequence[Node], free_slots: int, *,
              used: Mapping[str, Resources] | None = None, array_running: Mapping[int, int] | None = None,
              running: Sequence[Hold] = (), now_s: float = 0.0, backfill: bool = False,
              reserve_depth: int = DEFAULT_RESERVE_DEPTH, depth: int | None = None,
              partitions: Collection[str] | None = None) -> Plan:
    """Decide one pass.  ``pending`` must be in order_key order (it is read once, lazily); ``used`` is
    what each node holds now (by Ray node id; a node not in it holds nothing).

    ``array_running`` counts the running tasks of each array (for the %N throttle);
    ``running`` (with expected ends) and ``now_s`` are used by backfill only.

    A pass given ``partitions`` (those of the pending jobs) stops, with ``complete`` False and no
    reason for the jobs it did not reach, once every one of them is blocked with no reservation
    left to make: no later job could start, and each gets what ``tail_reasons`` gives.  A quick
    pass (``depth`` given, as Slurm's default_queue_depth) also stops once no free slot is left or
    ``depth`` jobs were considered.  Every job a pass reaches gets the decision a pass over every
    job would give it.
    """
    plan = Plan()
    used = used or {}
    free = {node.ray_node_id: node.capacity - used.get(node.ray_node_id, NOTHING) for node in nodes}
    blocked: set[str] = set()  # partitions whose first waiting job has been seen
    array_running = dict(array_running or {})
    timelines = {node.ray_node_id: _Timeline(node, now_s) for node in nodes} if backfill else {}
    for hold in running if backfill else ():
        for node in hold.allocation.nodes:
            if node.ray_node_id in timelines:
                timelines[node.ray_node_id].add(now_s, _end(hold.end_s, now_s), hold.allocation.per_node)
    reserved = 0
    considered = 0
    reasons = plan.reasons
    shapes: dict[tuple, list[Node] | None] = {}
    for job in pending:
        if (depth is not None and (free_slots <= 0 or considered >= depth)) or (
                partitions is not None and blocked.issuperset(partitions)
                and (not backfill or reserved >= reserve_depth)):
            plan.complete = False
            break
        considered += 1
        job, mine = _shape(job, nodes, free, shapes)
        if mine is None:
            reasons[job.job_id] = Reason.PARTITION_CONFIG
            continue
        if job.array_max_running is not None and array_running.get(job.array_job_id, 0) >= job.array_max_running:
            reasons[job.job_id] = Reason.ARRAY_TASK_LIMIT
            continue
        if job.partition in blocked and (not backfill or reserved >= reserve_depth):
            # Without backfill a waiting job blocks the rest of its partition; with it, past
            # reserve_depth the rest are not tested (Slurm's bf_max_job_test), keeping a pass cheap.
            reasons[job.job_id] = Reason.PRIORITY
            continue
        need = job.per_node
        duration_s = _FOREVER if job.time_limit_s is None else float(job.time_limit_s)
        chosen = _place_now(job, mine, free, timelines, now_s, duration_s) if free_slots > 0 else None
        if chosen is not None:
            for node in chosen:
                free[node.ray_node_id] -= need
                if backfill:
                    timelines[node.ray_node_id].add(now_s, now_s + duration_s, need)
            free_slots -= 1
            if job.array_job_id is not None:
                array_running[job.array_job_id] = array_running.get(job.array_job_id, 0) + 1
            plan.starts.append(Allocation(job.job_id, tuple(chosen), need))
            continue
        plan.reasons[job.job_id] = Reason.PRIORITY if job.partition in blocked else Reason.RESOURCES
        blocked.add(job.partition)
        if backfill and reserved < reserve_depth:
            reserved += 1
            reservation = _earliest(job, mine, timelines, now_s, duration_s)
            if reservation is not None:
                start_s, where = reservation
                for node in where:
                    timelines[node.ray_node_id].add(start_s, start_s + duration_s, need)
                plan.expected_start_s[job.job_id] = start_s
    plan.array_running = array_running
    return plan


def tail_reasons(jobs: Iterable[Candidate], nodes: Sequence[Node],
                 array_running: Mapping[int, int] | None = None) -> dict[int, Reason]:
    """The reasons a full pass gives ``jobs`` that come after the point where it stopped
    (``partitions`` given, every one blocked with its reservations made): PartitionConfig for a
    job no set of ``nodes`` could hold, JobArrayTaskLimit for a throttled array's task (with
    ``array_running`` counted after the pass's starts), Priority for every other."""
    array_running = array_running or {}
    shapes: dict[tuple, list[Node] | None] = {}
    free = {node.ray_node_id: node.capacity for node in nodes}  # only an --exclusive job's shape reads it
    reasons = {}
    for job in jobs:
        job, mine = _shape(job, nodes, free, shapes)
        if mine is None:
            reasons[job.job_id] = Reason.PARTITION_CONFIG
        elif job.array_max_running is not None and array_running.get(job.array_job_id, 0) >= job.array_max_running:
            reasons[job.job_id] = Reason.ARRAY_TASK_LIMIT
        else:
            reasons[job.job_id] = Reason.PRIORITY
    return reasons


def _shape(job: Candidate, nodes: Sequence[Node], free: Mapping[str, Resources],
           shapes: dict[tuple, list[Node] | None]) -> tuple[Candidate, list[Node] | None]:
    """The job as placed (an --exclusive one takes whole nodes) and the nodes of its partition,
    or None when no set of them could ever hold it (PartitionConfig).  A shape (partition,
    per-node need, node count) has the same answer for every job of a pass: kept in ``shapes``."""
    if job.exclusive:
        job, mine = _whole_nodes(job, [node for node in nodes if node.serves(job.partition)], free)
        return job, mine if sum(job.per_node.fits_in(node.capacity) for node in mine) >= job.nodes else None
    key = (job.partition, job.per_node, job.nodes)
    if key not in shapes:
        mine = [node for node in nodes if node.serves(job.partition)]
        shapes[key] = mine if sum(job.per_node.fits_in(node.capacity) for node in mine) >= job.nodes else None
    return job, shapes[key]


def _whole_nodes(job: Candidate, mine: list[Node], free: Mapping[str, Resources]) -> tuple[Candidate, list[Node]]:
    """An --exclusive job as the policy places it: on nodes of one shape, taking each node's CPUs and GPUs.

    As every job needs a CPU, a node whose CPUs an exclusive job holds takes no other job, and the job
    fits only where nothing runs.  Shapes are tried smallest first; one with enough idle nodes wins.
    """
    shapes: dict[Resources, list[Node]] = {}
    for node in mine:
        if job.per_node.fits_in(node.capacity):
            shape = Resources(node.capacity.cpus, job.per_node.memory_mb, node.capacity.gpus)
            shapes.setdefault(shape, []).append(node)
    usable = sorted(((shape, group) for shape, group in shapes.items() if len(group) >= job.nodes),
                    key=lambda item: (item[0].gpus, item[0].cpus, item[0].memory_mb))
    if not usable:
        return job, []
    idle = [(shape, group) for shape, group in usable
            if sum(shape.fits_in(free[node.ray_node_id]) for node in group) >= job.nodes]
    shape, group = (idle or usable)[0]
    return replace(job, per_node=shape), group


def _end(end_s: float | None, now_s: float) -> float:
    """A running job's expected end; one past its limit (being killed) ends "very soon"."""
    if end_s is None:
        return _FOREVER
    return max(end_s, now_s + 1.0)


def _place_now(job: Candidate, mine: list[Node], free: Mapping[str, Resources], timelines: dict[str, _Timeline],
               now_s: float, duration_s: float) -> list[Node] | None:
    """The ``job.nodes`` best-fitting nodes that can hold the job now (and, with backfill, for its
    whole time limit beside every reservation); None when there are not enough."""
    need = job.per_node
    fitting = [node for node in mine if need.fits_in(free[node.ray_node_id])]
    if timelines:
        fitting = [node for node in fitting if timelines[node.ray_node_id].fits(now_s, now_s + duration_s, need)]
    if len(fitting) < job.nodes:
        return None
    return sorted(fitting, key=lambda n: _leftover(n, free[n.ray_node_id], need))[:job.nodes]


def _earliest(job: Candidate, mine: list[Node], timelines: dict[str, _Timeline], now_s: float,
              duration_s: float) -> tuple[float, list[Node]] | None:
    """The earliest time ``job.nodes`` nodes of ``mine`` are all free for the job's duration, and which."""
    need = job.per_node
    holders = [node for node in mine if need.fits_in(node.capacity)]
    if job.nodes == 1:
        best: tuple[float, list[Node]] | None = None
        for node in holders:
            start_s = timelines[node.ray_node_id].earliest(duration_s, need)
            if start_s is not None and (best is None or start_s < best[0]):
                best = (start_s, [node])
        return best
    times = sorted({t for node in holders for t in timelines[node.ray_node_id].breakpoints()})
    for start_s in times:
        room = [node for node in holders if timelines[node.ray_node_id].fits(start_s, start_s + duration_s, need)]
        if len(room) >= job.nodes:
            return start_s, room[:job.nodes]
    return None


class _Timeline:
    """One node's expected use over time: running jobs, this pass's starts, and reservations."""

    def __init__(self, node: Node, now_s: float) -> None:
        self._capacity = node.capacity
        self._now_s = now_s
        self._holds: list[tuple[float, float, Resources]] = []
        self._segments: list[tuple[float, Resources]] | None = None

    def add(self, start_s: float, end_s: float, need: Resources) -> None:
        self._holds.append((max(start_s, self._now_s), end_s, need))
        self._segments = None

    def breakpoints(self) -> list[float]:
        return [start for start, _ in self._profile()]

    def fits(self, start_s: float, end_s: float, need: Resources) -> bool:
        """Whether ``need`` fits beside everything else at every moment of [start_s, end_s)."""
        segments = self._profile()
        for index, (seg_start, in_use) in enumerate(segments):
            seg_end = segments[index + 1][0] if index + 1 < len(segments) else _FOREVER
            if seg_end <= start_s or seg_start >= end_s:
                continue
            if not (in_use + need).fits_in(self._capacity):
                return False
        return True

    def earliest(self, duration_s: float, need: Resources) -> float | None:
        """The first segment start from which ``need`` fits for ``duration_s``; None: never."""
        segments = self._profile()
        candidate = 0
        while candidate < len(segments):
            start_s = segments[candidate][0]
            index = candidate
            while index < len(segments) and segments[index][0] < start_s + duration_s:
                if not (segments[index][1] + need).fits_in(self._capacity):
                    break
                index += 1
            else:
                return start_s
            candidate = index + 1
        return None

    def _profile(self) -> list[tuple[float, Resources]]:
        """Consecutive segments (start, in use) from now on; the last one lasts forever."""
        if self._segments is None:
            changes: dict[float, Resources] = {self._now_s: NOTHING}
            for start_s, end_s, need in self._holds:
                changes[start_s] = changes.get(start_s, NOTHING) + need
                if end_s != _FOREVER:
                    changes[end_s] = changes.get(end_s, NOTHING) - need
            segments, in_use = [], NOTHING
            for at in sorted(changes):
                in_use = in_use + changes[at]
                segments.append((at, in_use))
            self._segments = segments
        return self._segments
