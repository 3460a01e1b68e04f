"""Resources and nodes: what a node has, what a job asks for on each node, and what it holds.

``Resources`` is always *per node*: a job asks for the same CPUs, memory and GPUs on each of
its ``nodes`` (Slurm's ``--mem`` and ``--gpus-per-node`` are per node too).  The whole job's
total is explicit: ``per_node.times(nodes)``.  Pure values, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

#: A node label that names the node for conductor (overrides Ray's NodeName).
NODE_NAME_LABEL = "conductor.io/node-name"
#: A node label that puts the node in a partition (ray start --labels conductor.io/partition=gpu).
PARTITION_LABEL = "conductor.io/partition"


@dataclass(frozen=True, slots=True)
class Resources:
    """CPUs, memory (MB) and GPUs: a node's capacity, or what a job takes on one node."""

    cpus: int = 0
    memory_mb: int = 0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_mb + other.memory_mb, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory_mb - other.memory_mb, self.gpus - other.gpus)

    def times(self, count: int) -> Resources:
        """``count`` nodes' worth: a job's whole total from its per-node request."""
        return Resources(self.cpus * count, self.memory_mb * count, self.gpus * count)

    def fits_in(self, room: Resources) -> bool:
        """Whether this much fits in ``room`` (every kind at once)."""
        return self.cpus <= room.cpus and self.memory_mb <= room.memory_mb and self.gpus <= room.gpus


NOTHING = Resources()


@dataclass(frozen=True)
class Node:
    """A node of the cluster: its Ray id, conductor's name for it, its capacity and labels.

    ``partitions`` are the partitions it serves by configuration (None: every partition, in a
    cluster that configures none).  ``alive`` is False for a node that has left.
    """

    ray_node_id: str
    name: str
    capacity: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    partitions: frozenset[str] | None = None
    alive: bool = True

    def serves(self, partition: str) -> bool:
        return self.partitions is None or partition in self.partitions


@dataclass(frozen=True)
class Allocation:
    """What a running job holds: ``per_node`` on each of ``nodes``; the script runs on the first.

    One resource_allocations row per node.  Its ``total`` is what the job holds in all.
    """

    job_id: int
    nodes: tuple[Node, ...]
    per_node: Resources

    @property
    def first(self) -> Node:
        return self.nodes[0]

    @property
    def total(self) -> Resources:
        return self.per_node.times(len(self.nodes))

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]
