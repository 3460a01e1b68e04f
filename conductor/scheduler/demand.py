"""Demand for Ray's autoscaler: the pending jobs that no live node can hold now, as resource bundles.

conductor only dispatches what fits, so Ray never sees a task waiting for resources and its
autoscaler never scales up for conductor's queue.  The scheduler tells it instead, through
``ray.autoscaler.sdk.request_resources(bundles=...)``, whose bundles say what the cluster as a
whole must be able to hold at once ("this takes into account existing resource usage": the
autoscaler packs the bundles into the nodes' totals, not into what is free).  So the request is
every live node's whole capacity, then one bundle per node of each unmet job: a new node is
started exactly when the unmet jobs do not fit in the nodes there are.

A job is unmet when it waits for room (Resources, Priority, PartitionConfig) and the live nodes of
its partition do not have it free now; a job that fits and waits only for a worker slot or
behind a backfill reservation is not.  It is bounded by its partition: a job of a partition that
is not UP, or over its partition's MaxNodes or MaxCPUsPerJob, asks for nothing; and all unmet
jobs together give at most ``MAX_BUNDLES`` bundles, in priority order.

Ray's local-provider node type carries no labels, so the bundles carry no label selectors: an
autoscaler that cannot start a node of a given partition can only be asked for CPUs, memory and
GPUs.  ``Requests`` decides when to send: on every change while there is demand, and an empty
request (the withdrawal) once there has been none for ``HOLD_S``.  Everything here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from conductor import partitions as partition_config
from conductor.jobs import Reason
from conductor.partitions import Partition
from conductor.policy import Candidate
from conductor.resources import NOTHING, Node, Resources

#: The reasons of a job that waits for room on a node.
WAITING_FOR_ROOM = frozenset({Reason.RESOURCES, Reason.PRIORITY, Reason.PARTITION_CONFIG})
#: Most bundles of unmet jobs in one request (a deep queue must not make a huge request).
MAX_BUNDLES = 500
#: How long the request stands after the last unmet job (started, cancelled, or it fits now).
HOLD_S = 30.0
_MIB = 1024 * 1024


def bundle(resources: Resources) -> dict[str, float]:
    """Ray's resource shape for ``resources`` (memory in bytes; zero amounts left out)."""
    shape = {"CPU": resources.cpus, "memory": resources.memory_mb * _MIB, "GPU": resources.gpus}
    return {name: float(amount) for name, amount in shape.items() if amount}


def unmet(waiting: Iterable[tuple[Candidate, Reason]], nodes: Sequence[Node], used: Mapping[str, Resources],
          configured: Sequence[Partition]) -> list[Candidate]:
    """The jobs among ``waiting`` (in priority order, with their recorded reasons) that no live node
    of their partition can hold now, within their partitions' limits, up to MAX_BUNDLES bundles."""
    free = {node.ray_node_id: node.capacity - used.get(node.ray_node_id, NOTHING) for node in nodes}
    found, bundles = [], 0
    for job, reason in waiting:
        if reason not in WAITING_FOR_ROOM or not _within_limits(job, configured):
            continue
        mine = [node for node in nodes if node.serves(job.partition)]
        if _fits_now(job, mine, free, used):
            continue
        if bundles + job.nodes > MAX_BUNDLES:
            break
        found.append(job)
        bundles += job.nodes
    return found


def request(nodes: Sequence[Node], jobs: Sequence[Candidate]) -> list[dict[str, float]]:
    """The bundles to ask for: every live node's capacity, then each unmet job's share per node.
    Empty when no job is unmet (nothing to ask for)."""
    if not jobs:
        return []
    shares = [bundle(job.per_node) for job in jobs for _ in range(job.nodes)]
    return [b for b in [*(bundle(node.capacity) for node in nodes), *shares] if b]


def _within_limits(job: Candidate, configured: Sequence[Partition]) -> bool:
    partition = partition_config.lookup(configured, job.partition)  # open partitions: any name
    if partition is None:
        return False
    if partition.state != "UP":
        return False
    if partition.max_nodes is not None and job.nodes > partition.max_nodes:
        return False
    return partition.max_cpus_per_job is None or job.per_node.cpus * job.nodes <= partition.max_cpus_per_job


def _fits_now(job: Candidate, mine: Sequence[Node], free: Mapping[str, Resources],
              used: Mapping[str, Resources]) -> bool:
    if job.exclusive:  # whole nodes: only a node with nothing on it
        room = [n for n in mine if used.get(n.ray_node_id, NOTHING) == NOTHING and job.per_node.fits_in(n.capacity)]
    else:
        room = [n for n in mine if job.per_node.fits_in(free[n.ray_node_id])]
    return len(room) >= job.nodes


@dataclass
class Requests:
    """What was last asked of the autoscaler, and when there last was demand; decides what to send."""

    sent: tuple = ()
    last_demand_s: float | None = None

    def next(self, bundles: list[dict[str, float]], now_s: float) -> list[dict[str, float]] | None:
        """The bundles to send now (``[]``: withdraw the request), or None when nothing changes."""
        if bundles:
            self.last_demand_s = now_s
            shape = tuple(tuple(sorted(b.items())) for b in bundles)
            return None if shape == self.sent else bundles
        if not self.sent or (self.last_demand_s is not None and now_s - self.last_demand_s < HOLD_S):
            return None
        return []

    def done(self, bundles: list[dict[str, float]]) -> None:
        """Record that ``bundles`` were sent (call only once request_resources returned)."""
        self.sent = tuple(tuple(sorted(b.items())) for b in bundles)
