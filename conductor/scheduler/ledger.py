"""The scheduler's books: pending and running jobs, the live nodes, and what each node holds.

Pure: no database, no queue, no Ray.  The actor changes it as events arrive; a pass reads it.
Usage per node is derived from the running jobs' allocations (never stored twice), so it is
right by construction: a job holds its allocation from dispatch until its end is recorded.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from typing import Any, Collection, Iterable, Iterator

from conductor import dependencies, jobs, policy
from conductor.resources import NOTHING, Allocation, Node, Resources
from conductor.scheduler.ending import Intent


@dataclass(slots=True)
class PendingJob:
    """A PENDING job the scheduler may start, with its queue entries (acknowledged when it ends)."""

    job: jobs.Job
    candidate: policy.Candidate
    entry_ids: set[str] = field(default_factory=set)
    reason: jobs.Reason = jobs.Reason.NONE
    dependency: dependencies.Dependency | None = None


@dataclass(slots=True)
class RunningJob:
    """A dispatched job: its allocation, its task, and what the scheduler has asked of it."""

    job: jobs.Job
    allocation: Allocation
    entry_ids: set[str]
    task: Any = None  #: dispatch.Task once launched
    intent: Intent = Intent.NONE
    lost_node: str = ""  #: the node whose departure ends it (Intent.NODE_LOST)
    started_s: float = field(default_factory=time.time)  #: wall clock, for backfill's expected end


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> dependencies.Dependency:
    """A job's --dependency, parsed once per text (a job re-added after a hold is not parsed again)."""
    return dependencies.parse(text)


class Ledger:
    """Pending jobs, running jobs and live nodes (by Ray node id)."""

    def __init__(self) -> None:
        self.pending: dict[int, PendingJob] = {}
        self.running: dict[int, RunningJob] = {}
        self.nodes: dict[str, Node] = {}
        # The pending jobs in the policy's order, kept between passes (a pass reads only its head):
        # (order key, sequence, candidate); a job that left, or whose candidate was replaced since,
        # is skipped when read.  New candidates wait in _arrived until the next read sorts them in.
        self._order: list[tuple[tuple, int, policy.Candidate]] = []
        self._arrived: list[tuple[tuple, int, policy.Candidate]] = []
        self._partitions: set[str] = set()  # of the pending jobs, or a few more (see partitions())
        self._sequence = 0
        #: Jobs that may be blocked whatever the resources (hold, --begin, dependency): the only
        #: ones eligibility must look at.  Ids may linger after their job left (skipped when read).
        self.conditional: set[int] = set()
        #: Jobs a full pass must give a reason though it stopped before them (see ``unsettled_jobs``):
        #: those whose recorded reason is not Priority, and tasks of throttled arrays.  Ids may linger.
        self._unsettled: set[int] = set()

    def add_pending(self, job: jobs.Job, entry_ids: set[str], priority: int) -> PendingJob:
        """Take in a PENDING job (ValueError for a --dependency it cannot read)."""
        spec = job.spec
        candidate = policy.Candidate(
            job_id=job.id, partition=spec.partition, per_node=spec.per_node, priority=priority,
            submit_order=job.submit_time.timestamp(), array_job_id=spec.array_job_id,
            array_max_running=spec.array_max_running, nodes=spec.nodes, time_limit_s=spec.time_limit_s,
            exclusive=spec.exclusive)
        parsed = _parsed(spec.dependency) if spec.dependency else None
        pending = self.pending[job.id] = PendingJob(job, candidate, entry_ids, job.reason, parsed)
        self._arrive(candidate)
        if spec.hold or spec.begin_time is not None or parsed is not None:
            self.conditional.add(job.id)
        else:
            self.conditional.discard(job.id)
        self._settle(pending)
        return pending

    def set_reason(self, job_id: int, reason: jobs.Reason) -> None:
        """Record the reason a pass gave a pending job (as the database now has it)."""
        pending = self.pending[job_id]
        pending.reason = reason
        self._settle(pending)

    def _settle(self, pending: PendingJob) -> None:
        if pending.reason is jobs.Reason.PRIORITY and pending.candidate.array_max_running is None:
            self._unsettled.discard(pending.job.id)
        else:
            self._unsettled.add(pending.job.id)

    def unsettled_jobs(self, reached: Collection[int], limit: int) -> tuple[list[policy.Candidate], bool]:
        """Pending jobs a full pass that stopped early (every partition blocked) did not reach and
        must still decide, at most ``limit`` of them, and whether more are left.

        A job it did not reach gets Priority, PartitionConfig or JobArrayTaskLimit
        (policy.tail_reasons); one whose recorded reason is Priority keeps it unless it is a task
        of a throttled array, or the nodes changed (then the pass reads every job).  So only the
        others are read: new jobs, and jobs that waited for another reason.
        """
        found: list[policy.Candidate] = []
        gone = []
        for job_id in self._unsettled:
            held = self.pending.get(job_id)
            if held is None:
                gone.append(job_id)
            elif job_id not in reached:
                if len(found) == limit:
                    break
                found.append(held.candidate)
        else:
            self._unsettled.difference_update(gone)
            return found, False
        self._unsettled.difference_update(gone)
        return found, True

    def reprioritise(self, job_id: int, priority: int) -> None:
        """Give a pending job a new priority (it moves in the order)."""
        pending = self.pending[job_id]
        pending.candidate = replace(pending.candidate, priority=priority)
        self._arrive(pending.candidate)

    def _arrive(self, candidate: policy.Candidate) -> None:
        self._partitions.add(candidate.partition)
        self._sequence += 1
        self._arrived.append((policy.order_key(candidate), self._sequence, candidate))

    def ordered(self, excluded: Iterable[int] = ()) -> Iterator[policy.Candidate]:
        """Pending jobs the policy may consider, in its order, read lazily (a quick pass reads its head).

        New and re-prioritised jobs are merged in first (a sort of a nearly sorted list); entries
        of jobs that left are dropped once they outnumber the pending jobs.
        """
        if len(self._arrived) > len(self.pending) // 2:  # most moved (a priority refresh): sort afresh
            self._order, self._arrived = [], []
            for held in self.pending.values():
                self._arrive(held.candidate)
            self._order, self._arrived = self._arrived, []
            self._order.sort()  # keys are unique (the sequence): candidates are never compared
        elif self._arrived:
            self._order.extend(self._arrived)
            self._arrived = []
            self._order.sort()
        if len(self._order) > 2 * len(self.pending) + 1024:
            self._order = [entry for entry in self._order
                           if (held := self.pending.get(entry[2].job_id)) is not None and held.candidate is entry[2]]
        skip = set(excluded)
        for _, _, candidate in self._order:
            held = self.pending.get(candidate.job_id)
            if held is not None and held.candidate is candidate and candidate.job_id not in skip:
                yield candidate

    def holder(self, job_id: int) -> PendingJob | RunningJob | None:
        return self.pending.get(job_id) or self.running.get(job_id)

    def cluster_cpus(self) -> int:
        return sum(node.capacity.cpus for node in self.nodes.values())

    def used(self) -> dict[str, Resources]:
        """What conductor's running jobs hold on each live node."""
        used = {node_id: NOTHING for node_id in self.nodes}
        for running in self.running.values():
            for node in running.allocation.nodes:
                if node.ray_node_id in used:
                    used[node.ray_node_id] += running.allocation.per_node
        return used

    def holds(self, kill_wait_s: float) -> list[policy.Hold]:
        """Each running job's allocation with its expected end (start + limit + KillWait), for backfill."""
        holds = []
        for running in self.running.values():
            limit_s = running.job.spec.time_limit_s
            end_s = running.started_s + limit_s + kill_wait_s if limit_s else None
            holds.append(policy.Hold(running.allocation, end_s))
        return holds

    def array_running(self) -> dict[int, int]:
        """Running tasks per array (for the %N throttle)."""
        counts: dict[int, int] = {}
        for running in self.running.values():
            array = running.job.spec.array_job_id
            if array is not None:
                counts[array] = counts.get(array, 0) + 1
        return counts

    def partitions(self) -> set[str]:
        """The partitions of the pending jobs, and perhaps some whose jobs have all left since the
        last ``recount_partitions``: kept as jobs arrive, so a quick pass need not read them all
        (an extra partition only makes it read further before it stops)."""
        return self._partitions

    def recount_partitions(self, excluded: Collection[int] = ()) -> None:
        """Forget the partitions no pending job is in any more, nor any job but ``excluded`` ones
        (held, waiting for --begin or a dependency: no pass reads them, so they block nothing)."""
        self._partitions = {p.candidate.partition for job_id, p in self.pending.items() if job_id not in excluded}

    def replace_nodes(self, found: Iterable[Node]) -> bool:
        """Take Ray's live node set; True when it differs from what was known."""
        fresh = {node.ray_node_id: node for node in found}
        if fresh == self.nodes:
            return False
        self.nodes = fresh
        return True

    def lost_nodes(self, running: RunningJob) -> list[str]:
        """Names of the job's nodes that are no longer alive."""
        return [node.name for node in running.allocation.nodes if node.ray_node_id not in self.nodes]
