"""``/api/nodes``, ``/api/partitions``, ``/api/queue``: capacity and load, like sinfo and squeue's totals."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep, SettingsDep
from api.schemas import (Capacity, ErrorResponse, NodeListResponse, NodeOut, PartitionListResponse, PartitionOut,
                         QueueSummary)
from conductor import jobs, partitions
from conductor.resources import PARTITION_LABEL, Node, Resources
from conductor.service import JobService

router = APIRouter(prefix="/api", tags=["cluster"])
_ERRORS = {503: {"model": ErrorResponse}}
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


def _nodes(service: JobService) -> list[NodeOut]:
    return [_node_out(node, used) for node, used in service.nodes()]


@router.get("/nodes", response_model=NodeListResponse, responses=_ERRORS, summary="Nodes and their capacity")
def list_nodes(service: ServiceDep) -> NodeListResponse:
    """Every node the scheduler has seen, with total, allocated and free CPUs and memory."""
    return NodeListResponse(nodes=_nodes(service))


@router.get("/partitions", response_model=PartitionListResponse, responses=_ERRORS, summary="Partitions")
def list_partitions(service: ServiceDep, settings: SettingsDep) -> PartitionListResponse:
    """Each partition (sinfo): its up nodes, capacity, job counts and limits.

    With PARTITION_ keys configured, those partitions and the nodes each covers (a node may be in
    several); otherwise (open partitions) up nodes grouped by their conductor.io/partition label."""
    counts: dict[tuple[str, str], int] = {}
    for state, _reason, partition, count, _cpus in service.queue_summary():
        counts[state, partition] = counts.get((state, partition), 0) + count
    up = [node for node in _nodes(service) if node.state == "up"]
    if not settings.partitions:
        groups: dict[str, list[NodeOut]] = {}
        for node in up:
            groups.setdefault(node.partition, []).append(node)
        return PartitionListResponse(partitions=[_partition_out(partitions.lookup((), name), nodes, counts)
                                                 for name, nodes in sorted(groups.items())])
    return PartitionListResponse(partitions=[
        _partition_out(p, [n for n in up if p.covers(n.name, n.labels)], counts) for p in settings.partitions])


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


@router.get("/queue", response_model=QueueSummary, responses=_ERRORS, summary="Queue summary")
def queue_summary(service: ServiceDep) -> QueueSummary:
    """How many jobs wait and run, the CPUs they ask for and hold, and why the pending ones wait."""
    summary = QueueSummary(pending_jobs=0, running_jobs=0, pending_cpus=0, running_cpus=0, pending_by_reason={})
    for state, reason, _partition, count, cpus in service.queue_summary():
        if state == jobs.JobState.PENDING.value:
            summary.pending_jobs += count
            summary.pending_cpus += cpus
            summary.pending_by_reason[reason.value] = summary.pending_by_reason.get(reason.value, 0) + count
        else:
            summary.running_jobs += count
            summary.running_cpus += cpus
    return summary
