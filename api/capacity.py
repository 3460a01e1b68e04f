"""Nodes and partitions as the API shows them: capacity, allocation and job counts (sinfo's view).

Shared by the routers of ``/api/nodes``, ``/api/partitions`` and ``/api/status``, which import
this module rather than one another.
"""

from __future__ import annotations

from api.schemas import Capacity, NodeOut, PartitionOut
from conductor import jobs, partitions
from conductor.config import Settings
from conductor.resources import PARTITION_LABEL, Node, Resources
from conductor.service import JobService

DEFAULT_PARTITION = jobs.DEFAULT_PARTITION


def _partition_of(node: Node) -> str:
    return str(node.labels.get(PARTITION_LABEL) or DEFAULT_PARTITION)


def _capacity(total: int, allocated: int) -> Capacity:
    return Capacity(total=total, allocated=allocated, free=max(0, total - allocated))


def _node_out(node: Node, used: Resources) -> NodeOut:
    return NodeOut(name=node.name, ray_node_id=node.ray_node_id, state="up" if node.alive else "down",
                   partition=_partition_of(node), labels={k: str(v) for k, v in node.labels.items()},
                   cpus=_capacity(node.capacity.cpus, used.cpus),
                   memory_mb=_capacity(node.capacity.memory_mb, used.memory_mb), gpus=node.capacity.gpus,
                   gpus_allocated=used.gpus)


def nodes(service: JobService) -> list[NodeOut]:
    return [_node_out(node, used) for node, used in service.nodes()]


def partitions_of(service: JobService, settings: Settings,
                  summary: list[tuple[str, jobs.Reason, str, int, int]] | None = None) -> list[PartitionOut]:
    """Each partition (sinfo): its up nodes, capacity, job counts and limits.

    With PARTITION_ keys configured, those partitions and the nodes each covers (a node may be in
    several); otherwise (open partitions) up nodes grouped by their conductor.io/partition label."""
    counts: dict[tuple[str, str], int] = {}
    for state, _reason, partition, count, _cpus in (service.queue_summary() if summary is None else summary):
        counts[state, partition] = counts.get((state, partition), 0) + count
    up = [node for node in nodes(service) if node.state == "up"]
    if not settings.partitions:
        groups: dict[str, list[NodeOut]] = {}
        for node in up:
            groups.setdefault(node.partition, []).append(node)
        return [_partition_out(partitions.lookup((), name), members, counts) for name, members in sorted(groups.items())]
    return [_partition_out(p, [n for n in up if p.covers(n.name, n.labels)], counts) for p in settings.partitions]


def _partition_out(partition: partitions.Partition, nodes: list[NodeOut],
                   counts: dict[tuple[str, str], int]) -> PartitionOut:
    def total(pick) -> Capacity:  # noqa: ANN001
        caps = [pick(node) for node in nodes]
        return Capacity(total=sum(c.total for c in caps), allocated=sum(c.allocated for c in caps),
                        free=sum(c.free for c in caps))

    name = partition.name
    state = "down" if partition.state == "DOWN" else ("up" if nodes else "inactive")
    return PartitionOut(name=name, state=state, nodes=[n.name for n in nodes], cpus=total(lambda n: n.cpus),
                        memory_mb=total(lambda n: n.memory_mb), gpus=sum(n.gpus for n in nodes),
                        gpus_allocated=sum(n.gpus_allocated for n in nodes),
                        pending_jobs=counts.get((jobs.JobState.PENDING.value, name), 0),
                        running_jobs=counts.get((jobs.JobState.RUNNING.value, name), 0),
                        default=partition.default, default_time_s=partition.default_time_s,
                        max_time_s=partition.max_time_s, max_cpus_per_job=partition.max_cpus_per_job,
                        max_nodes=partition.max_nodes, priority_job_factor=partition.priority_job_factor,
                        covers=partition.describe_nodes())
