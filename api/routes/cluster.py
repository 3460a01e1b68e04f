"""``/api/nodes``, ``/api/partitions``, ``/api/queue``: capacity and load, like sinfo and squeue's totals."""

from __future__ import annotations

from fastapi import APIRouter

from api import capacity
from api.deps import ServiceDep, SettingsDep
from api.schemas import ErrorResponse, NodeListResponse, PartitionListResponse, QueueSummary
from conductor import jobs

router = APIRouter(prefix="/api", tags=["cluster"])
_ERRORS = {503: {"model": ErrorResponse}}


@router.get("/nodes", response_model=NodeListResponse, responses=_ERRORS, summary="Nodes and their capacity")
def list_nodes(service: ServiceDep) -> NodeListResponse:
    """Every node the scheduler has seen, with total, allocated and free CPUs and memory."""
    return NodeListResponse(nodes=capacity.nodes(service))


@router.get("/partitions", response_model=PartitionListResponse, responses=_ERRORS, summary="Partitions")
def list_partitions(service: ServiceDep, settings: SettingsDep) -> PartitionListResponse:
    """Each partition (sinfo): its up nodes, capacity, job counts and limits.

    With PARTITION_ keys configured, those partitions and the nodes each covers (a node may be in
    several); otherwise (open partitions) up nodes grouped by their conductor.io/partition label."""
    return PartitionListResponse(partitions=capacity.partitions_of(service, settings))


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
