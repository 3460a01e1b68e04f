"""The scheduling decision, as a pure function: which pending jobs start now, where, and why the rest wait.

Policy (Slurm's main scheduler without backfill): pending jobs are taken in
(priority high first, submit time, id) order; a job starts when a node has its CPUs and
memory free and fewer than WORKER_CONCURRENCY jobs are in flight; it goes on the node
where it fits most tightly (best fit).  Once a job of a partition must wait, lower jobs
of that partition wait too (reason Priority), so a large job is not starved by a stream
of small ones.  A job no live node could ever hold does not block anyone (PartitionConfig).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

from conductor.dependencies import Verdict
from conductor.jobs import Reason


@dataclass
class NodeSlot:
    """A node's capacity and what conductor has allocated on it."""

    ray_node_id: str
    name: str
    total_cpus: int
    total_memory_mb: int
    used_cpus: int = 0
    used_memory_mb: int = 0
    labels: dict = field(default_factory=dict)

    @property
    def free_cpus(self) -> int:
        return self.total_cpus - self.used_cpus

    @property
    def free_memory_mb(self) -> int:
        return self.total_memory_mb - self.used_memory_mb

    def can_ever_hold(self, cpus: int, memory_mb: int) -> bool:
        return cpus <= self.total_cpus and memory_mb <= self.total_memory_mb

    def can_hold_now(self, cpus: int, memory_mb: int) -> bool:
        return cpus <= self.free_cpus and memory_mb <= self.free_memory_mb


@dataclass(frozen=True)
class Candidate:
    """What the policy needs to know of a pending job."""

    job_id: int
    partition: str
    cpus: int
    memory_mb: int
    priority: int
    submit_order: float  #: submit time as a number; earlier first
    array_job_id: int | None = None
    array_max_running: int | None = None  #: the array's %N throttle


@dataclass
class Plan:
    """The outcome of one pass."""

    starts: list[tuple[Candidate, NodeSlot]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)


def order_key(candidate: Candidate) -> tuple:
    return (-candidate.priority, candidate.submit_order, candidate.job_id)


def best_fit(nodes: Iterable[NodeSlot], cpus: int, memory_mb: int) -> NodeSlot | None:
    """The node that holds the job with the fewest CPUs (then MB) left over; None if none can."""
    fitting = [node for node in nodes if node.can_hold_now(cpus, memory_mb)]
    if not fitting:
        return None
    return min(fitting, key=lambda n: (n.free_cpus - cpus, n.free_memory_mb - memory_mb, n.name))


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
              array_running: dict[int, int] | None = None) -> Plan:
    """Decide one pass.  ``pending`` must be in order_key order; ``nodes`` are updated in place.

    ``array_running`` counts the running tasks of each array (for the %N throttle).
    """
    plan = Plan()
    blocked: set[str] = set()
    array_running = dict(array_running or {})
    for job in pending:
        if not any(node.can_ever_hold(job.cpus, job.memory_mb) for node in nodes):
            plan.reasons[job.job_id] = Reason.PARTITION_CONFIG
            continue
        if job.array_max_running is not None and array_running.get(job.array_job_id, 0) >= job.array_max_running:
            plan.reasons[job.job_id] = Reason.ARRAY_TASK_LIMIT
            continue
        if job.partition in blocked:
            plan.reasons[job.job_id] = Reason.PRIORITY
            continue
        node = best_fit(nodes, job.cpus, job.memory_mb) if free_slots > 0 else None
        if node is None:
            plan.reasons[job.job_id] = Reason.RESOURCES
            blocked.add(job.partition)
            continue
        node.used_cpus += job.cpus
        node.used_memory_mb += job.memory_mb
        free_slots -= 1
        if job.array_job_id is not None:
            array_running[job.array_job_id] = array_running.get(job.array_job_id, 0) + 1
        plan.starts.append((job, node))
    return plan
