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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

from conductor.dependencies import Verdict
from conductor.jobs import Reason

#: Reservations made per pass at most (Slurm's bf_max_job_test default is 500).
DEFAULT_RESERVE_DEPTH = 200
_FOREVER = math.inf


@dataclass
class NodeSlot:
    """A node's capacity, its partitions, and what conductor has allocated on it now."""

    ray_node_id: str
    name: str
    total_cpus: int
    total_memory_mb: int
    used_cpus: int = 0
    used_memory_mb: int = 0
    labels: dict = field(default_factory=dict)
    total_gpus: int = 0
    used_gpus: int = 0
    #: Partitions the node belongs to; None: every partition (a cluster without partitions).
    partitions: frozenset[str] | None = None

    @property
    def free_cpus(self) -> int:
        return self.total_cpus - self.used_cpus

    @property
    def free_memory_mb(self) -> int:
        return self.total_memory_mb - self.used_memory_mb

    @property
    def free_gpus(self) -> int:
        return self.total_gpus - self.used_gpus

    def serves(self, partition: str) -> bool:
        return self.partitions is None or partition in self.partitions

    def can_ever_hold(self, cpus: int, memory_mb: int, gpus: int = 0) -> bool:
        return cpus <= self.total_cpus and memory_mb <= self.total_memory_mb and gpus <= self.total_gpus

    def can_hold_now(self, cpus: int, memory_mb: int, gpus: int = 0) -> bool:
        return cpus <= self.free_cpus and memory_mb <= self.free_memory_mb and gpus <= self.free_gpus


@dataclass(frozen=True)
class Candidate:
    """What the policy needs to know of a pending job.  Resources are per node."""

    job_id: int
    partition: str
    cpus: int
    memory_mb: int
    priority: int
    submit_order: float  #: submit time as a number; earlier first
    array_job_id: int | None = None
    array_max_running: int | None = None  #: the array's %N throttle
    gpus: int = 0
    nodes: int = 1
    #: Expected run time (the time limit, or the partition's default); None: no limit.
    time_limit_s: float | None = None


@dataclass(frozen=True)
class Busy:
    """A running job's hold on one node until its expected end (start + time limit; None: unknown)."""

    ray_node_id: str
    cpus: int
    memory_mb: int
    gpus: int = 0
    end_s: float | None = None


@dataclass
class Plan:
    """The outcome of one pass."""

    starts: list[tuple[Candidate, list[NodeSlot]]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    #: Blocked jobs that got a reservation: when they are expected to start (backfill only).
    expected_start_s: dict[int, float] = field(default_factory=dict)


def order_key(candidate: Candidate) -> tuple:
    return (-candidate.priority, candidate.submit_order, candidate.job_id)


def best_fit(nodes: Iterable[NodeSlot], cpus: int, memory_mb: int, gpus: int = 0) -> NodeSlot | None:
    """The node that holds the job with the fewest CPUs (then MB) left over; None if none can."""
    fitting = [node for node in nodes if node.can_hold_now(cpus, memory_mb, gpus)]
    if not fitting:
        return None
    return min(fitting, key=lambda n: _leftover(n, cpus, memory_mb, gpus))


def _leftover(node: NodeSlot, cpus: int, memory_mb: int, gpus: int) -> tuple:
    # GPUs first: a CPU-only job should not take the CPUs of a GPU node while plain nodes are free.
    return (node.free_gpus - gpus, node.free_cpus - cpus, node.free_memory_mb - memory_mb, node.name)


def blocked_reason(*, hold: str | None, begin_time: datetime | None, now: datetime,
                   dependency: Verdict | None) -> str | None:
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


def plan_pass(pending: Sequence[Candidate], nodes: Sequence[NodeSlot], free_slots: int, *,
              array_running: dict[int, int] | None = None, running: Sequence[Busy] = (),
              now_s: float = 0.0, backfill: bool = False, reserve_depth: int = DEFAULT_RESERVE_DEPTH) -> Plan:
    """Decide one pass.  ``pending`` must be in order_key order; ``nodes`` are updated in place.

    ``array_running`` counts the running tasks of each array (for the %N throttle);
    ``running`` (with expected ends) and ``now_s`` are used by backfill only.
    """
    plan = Plan()
    blocked: set[str] = set()  # partitions whose first waiting job has been seen
    array_running = dict(array_running or {})
    timelines = {node.ray_node_id: _Timeline(node, now_s) for node in nodes} if backfill else {}
    for busy in running if backfill else ():
        if busy.ray_node_id in timelines:
            timelines[busy.ray_node_id].add(now_s, _end(busy.end_s, now_s), busy.cpus, busy.memory_mb, busy.gpus)
    reserved = 0
    for job in pending:
        mine = [node for node in nodes if node.serves(job.partition)]
        if sum(node.can_ever_hold(job.cpus, job.memory_mb, job.gpus) for node in mine) < job.nodes:
            plan.reasons[job.job_id] = Reason.PARTITION_CONFIG
            continue
        if job.array_max_running is not None and array_running.get(job.array_job_id, 0) >= job.array_max_running:
            plan.reasons[job.job_id] = Reason.ARRAY_TASK_LIMIT
            continue
        if job.partition in blocked and (not backfill or reserved >= reserve_depth):
            # Without backfill a waiting job blocks the rest of its partition; with it, past
            # reserve_depth the rest are not tested (Slurm's bf_max_job_test), keeping a pass cheap.
            plan.reasons[job.job_id] = Reason.PRIORITY
            continue
        duration_s = _FOREVER if job.time_limit_s is None else float(job.time_limit_s)
        chosen = _place_now(job, mine, timelines, now_s, duration_s) if free_slots > 0 else None
        if chosen is not None:
            for node in chosen:
                node.used_cpus += job.cpus
                node.used_memory_mb += job.memory_mb
                node.used_gpus += job.gpus
                if backfill:
                    timelines[node.ray_node_id].add(now_s, now_s + duration_s, job.cpus, job.memory_mb, job.gpus)
            free_slots -= 1
            if job.array_job_id is not None:
                array_running[job.array_job_id] = array_running.get(job.array_job_id, 0) + 1
            plan.starts.append((job, chosen))
            continue
        plan.reasons[job.job_id] = Reason.PRIORITY if job.partition in blocked else Reason.RESOURCES
        blocked.add(job.partition)
        if backfill and reserved < reserve_depth:
            reserved += 1
            reservation = _earliest(job, mine, timelines, now_s, duration_s)
            if reservation is not None:
                start_s, where = reservation
                for node in where:
                    timelines[node.ray_node_id].add(start_s, start_s + duration_s, job.cpus, job.memory_mb, job.gpus)
                plan.expected_start_s[job.job_id] = start_s
    return plan


def _end(end_s: float | None, now_s: float) -> float:
    """A running job's expected end; one past its limit (being killed) ends "very soon"."""
    if end_s is None:
        return _FOREVER
    return max(end_s, now_s + 1.0)


def _place_now(job: Candidate, mine: list[NodeSlot], timelines: dict[str, _Timeline], now_s: float,
               duration_s: float) -> list[NodeSlot] | None:
    """The ``job.nodes`` best-fitting nodes that can hold the job now (and, with backfill, for its
    whole time limit beside every reservation); None when there are not enough."""
    fitting = [node for node in mine if node.can_hold_now(job.cpus, job.memory_mb, job.gpus)]
    if timelines:
        fitting = [node for node in fitting
                   if timelines[node.ray_node_id].fits(now_s, now_s + duration_s, job.cpus, job.memory_mb, job.gpus)]
    if len(fitting) < job.nodes:
        return None
    return sorted(fitting, key=lambda n: _leftover(n, job.cpus, job.memory_mb, job.gpus))[:job.nodes]


def _earliest(job: Candidate, mine: list[NodeSlot], timelines: dict[str, _Timeline], now_s: float,
              duration_s: float) -> tuple[float, list[NodeSlot]] | None:
    """The earliest time ``job.nodes`` nodes of ``mine`` are all free for the job's duration, and which."""
    holders = [node for node in mine if node.can_ever_hold(job.cpus, job.memory_mb, job.gpus)]
    if job.nodes == 1:
        best: tuple[float, list[NodeSlot]] | None = None
        for node in holders:
            start_s = timelines[node.ray_node_id].earliest(duration_s, job.cpus, job.memory_mb, job.gpus)
            if start_s is not None and (best is None or start_s < best[0]):
                best = (start_s, [node])
        return best
    times = sorted({t for node in holders for t in timelines[node.ray_node_id].breakpoints()})
    for start_s in times:
        free = [node for node in holders
                if timelines[node.ray_node_id].fits(start_s, start_s + duration_s, job.cpus, job.memory_mb, job.gpus)]
        if len(free) >= job.nodes:
            return start_s, free[:job.nodes]
    return None


class _Timeline:
    """One node's expected use over time: running jobs, this pass's starts, and reservations."""

    def __init__(self, node: NodeSlot, now_s: float) -> None:
        self._node = node
        self._now_s = now_s
        self._holds: list[tuple[float, float, int, int, int]] = []
        self._segments: list[tuple[float, int, int, int]] | None = None

    def add(self, start_s: float, end_s: float, cpus: int, memory_mb: int, gpus: int) -> None:
        self._holds.append((max(start_s, self._now_s), end_s, cpus, memory_mb, gpus))
        self._segments = None

    def breakpoints(self) -> list[float]:
        return [start for start, *_ in self._profile()]

    def fits(self, start_s: float, end_s: float, cpus: int, memory_mb: int, gpus: int) -> bool:
        """Whether the job fits beside everything else at every moment of [start_s, end_s)."""
        segments = self._profile()
        for index, (seg_start, used_cpus, used_mb, used_gpus) in enumerate(segments):
            seg_end = segments[index + 1][0] if index + 1 < len(segments) else _FOREVER
            if seg_end <= start_s or seg_start >= end_s:
                continue
            if not self._room(used_cpus, used_mb, used_gpus, cpus, memory_mb, gpus):
                return False
        return True

    def earliest(self, duration_s: float, cpus: int, memory_mb: int, gpus: int) -> float | None:
        """The first segment start from which the job fits for ``duration_s``; None: never."""
        segments = self._profile()
        candidate = 0
        while candidate < len(segments):
            start_s = segments[candidate][0]
            index = candidate
            while index < len(segments) and segments[index][0] < start_s + duration_s:
                _, used_cpus, used_mb, used_gpus = segments[index]
                if not self._room(used_cpus, used_mb, used_gpus, cpus, memory_mb, gpus):
                    break
                index += 1
            else:
                return start_s
            candidate = index + 1
        return None

    def _room(self, used_cpus: int, used_mb: int, used_gpus: int, cpus: int, memory_mb: int, gpus: int) -> bool:
        node = self._node
        return (used_cpus + cpus <= node.total_cpus and used_mb + memory_mb <= node.total_memory_mb
                and used_gpus + gpus <= node.total_gpus)

    def _profile(self) -> list[tuple[float, int, int, int]]:
        """Consecutive segments (start, used CPUs, MB, GPUs) from now on; the last one lasts forever."""
        if self._segments is None:
            changes: dict[float, list[int]] = {self._now_s: [0, 0, 0]}
            for start_s, end_s, cpus, memory_mb, gpus in self._holds:
                for at, sign in ((start_s, 1), (end_s, -1)):
                    if at == _FOREVER:
                        continue
                    delta = changes.setdefault(at, [0, 0, 0])
                    delta[0] += sign * cpus
                    delta[1] += sign * memory_mb
                    delta[2] += sign * gpus
            segments, used = [], [0, 0, 0]
            for at in sorted(changes):
                used = [u + d for u, d in zip(used, changes[at])]
                segments.append((at, used[0], used[1], used[2]))
            self._segments = segments
        return self._segments
