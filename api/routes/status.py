"""``GET /api/status``: the service at a glance (``conductor status``; Slurm's sdiag plus ``sinfo -s``).

Whether the scheduler answers and since when, who holds the scheduler lease, passes per minute
and the last pass's duration, the queue's depth and its oldest job, nodes up and down,
partitions, the database's, queue's and Ray's health, and conductor's version.  Aggregates only:
the oldest pending job's id is shown to a caller who may see that job, its age to everyone.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api import capacity
from api.deps import CallerDep, ServiceDep, SettingsDep
from api.errors import count_unavailable
from api.schemas import PartitionOut
from conductor import jobs
from conductor.auth import Caller
from conductor.exceptions import ServiceUnavailable
from conductor.keeper.protocol import conductor_version
from conductor.scheduler import handle as scheduler
from conductor.service import JobService

router = APIRouter(prefix="/api", tags=["health"])


class SchedulerOut(BaseModel):
    answers: bool | None = Field(description="null: this API runs without a scheduler of its own (not asked).")
    detail: str = Field(examples=["ok: 1 node(s), 0 pending, 0 running"])
    started_at: datetime | None = None
    uptime_s: float | None = None
    passes_total: int | None = None
    passes_per_minute: int | None = Field(None, description="Passes in the last 60 s.")
    last_pass_duration_s: float | None = None
    last_pass_at: datetime | None = None
    last_full_pass_duration_s: float | None = Field(
        None, description="The last pass that gave every pending job its reason (an event's pass stops once "
                          "nothing more can start).")
    pass_duration_p95_s: float | None = Field(None, description="Upper bound of the histogram bucket holding p95.")
    submit_to_start_p95_s: float | None = Field(None, description="Upper bound of the bucket holding p95 "
                                                                  "(null: nothing started, or past the last bucket).")
    loop_lag_s: float | None = None
    database_errors: int | None = None
    queue_errors: int | None = None


class LeaseOut(BaseModel):
    held: bool | None = Field(description="null: this database cannot tell.")
    holder: str = Field("", examples=["conductor-scheduler pid 4242 on head (database backend 77 from 10.0.0.1)"])


class OldestPendingOut(BaseModel):
    job_id: int | None = Field(description="null when the caller may not see that job.")
    submit_time: datetime
    age_s: float


class QueueOut(BaseModel):
    pending: int
    running: int
    pending_by_reason: dict[str, int]
    oldest_pending: OldestPendingOut | None


class NodeCountsOut(BaseModel):
    alive: int
    down: int
    names_down: list[str]


class PartitionSummaryOut(BaseModel):
    """sinfo -s: a partition's state, its nodes and CPUs allocated/idle/total."""

    name: str
    state: str
    nodes: int
    cpus_allocated: int
    cpus_idle: int
    cpus_total: int
    pending_jobs: int
    running_jobs: int


class StatusResponse(BaseModel):
    """null parts: the database did not answer (``components.database`` says why)."""

    version: str
    scheduler: SchedulerOut
    lease: LeaseOut | None = None
    queue: QueueOut | None = None
    nodes: NodeCountsOut | None = None
    partitions: list[PartitionSummaryOut] | None = None
    components: dict[str, str] = Field(description="database, queue and ray: ok, or why not.")


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds is not None else None


def _scheduler(answered: bool | None, found: scheduler.Status | str) -> SchedulerOut:
    if not isinstance(found, scheduler.Status):
        return SchedulerOut(answers=answered, detail=found)
    detail = f"ok: {len(found.nodes)} node(s), {found.pending} pending, {found.running} running"
    figures = found.figures
    if figures is None:
        return SchedulerOut(answers=True, detail=detail)
    now = datetime.now(timezone.utc).timestamp()
    return SchedulerOut(answers=True, detail=detail, started_at=_time(figures.started_at_s),
                        uptime_s=round(now - figures.started_at_s, 3), passes_total=figures.passes_total,
                        passes_per_minute=figures.passes_last_minute, last_pass_duration_s=figures.last_pass_duration_s,
                        last_pass_at=_time(figures.last_pass_at_s), loop_lag_s=figures.loop_lag_s,
                        last_full_pass_duration_s=figures.last_full_pass_duration_s,
                        pass_duration_p95_s=figures.pass_duration.quantile(0.95),
                        submit_to_start_p95_s=figures.submit_to_start.quantile(0.95),
                        database_errors=figures.database_errors, queue_errors=figures.queue_errors)


@router.get("/status", response_model=StatusResponse, summary="Service status (sdiag + sinfo -s)")
def status(request: Request, service: ServiceDep, settings: SettingsDep, caller: CallerDep) -> StatusResponse:
    """The scheduler, the lease, the queue, nodes, partitions and the health of what conductor depends on.

    It answers 200 whatever is down: a part the database cannot give now is null, and ``components`` says why."""
    components = {name: "ok" if failure is None else f"unavailable: {failure}"
                  for name, failure in service.ping().items()}
    answered, found = scheduler.describe(settings, check=bool(getattr(request.app.state, "check_ray", False)))
    scheduler_out = _scheduler(answered, found)
    components["ray"] = scheduler_out.detail
    reply = StatusResponse(version=conductor_version(), scheduler=scheduler_out, components=components)
    try:
        holder = service.lease_holder()
        reply.lease = LeaseOut(held=holder.held, holder=holder.holder)
        summary = service.queue_summary()
        reply.queue = _queue(service, caller, summary)
        nodes = capacity.nodes(service)
        reply.nodes = NodeCountsOut(alive=sum(n.state == "up" for n in nodes), down=sum(n.state != "up" for n in nodes),
                                    names_down=[n.name for n in nodes if n.state != "up"])
        reply.partitions = [_partition(p) for p in capacity.partitions_of(service, settings, summary)]
    except ServiceUnavailable as exc:
        count_unavailable(request, exc)
    return reply


def _queue(service: JobService, caller: Caller, summary: list[tuple[str, jobs.Reason, str, int, int]]) -> QueueOut:
    pending = running = 0
    by_reason: dict[str, int] = {}
    for state, reason, _partition, count, _cpus in summary:
        if state == jobs.JobState.PENDING.value:
            pending += count
            by_reason[reason.value] = by_reason.get(reason.value, 0) + count
        else:
            running += count
    oldest = service.oldest_pending()
    if oldest is None:
        return QueueOut(pending=pending, running=running, pending_by_reason=by_reason, oldest_pending=None)
    age_s = round((datetime.now(timezone.utc) - oldest.submit_time).total_seconds(), 3)
    return QueueOut(pending=pending, running=running, pending_by_reason=by_reason, oldest_pending=OldestPendingOut(
        job_id=oldest.job_id if caller.may_see(oldest.user) else None, submit_time=oldest.submit_time, age_s=age_s))


def _partition(p: PartitionOut) -> PartitionSummaryOut:
    return PartitionSummaryOut(name=p.name, state=p.state, nodes=len(p.nodes), cpus_allocated=p.cpus.allocated,
                               cpus_idle=p.cpus.free, cpus_total=p.cpus.total, pending_jobs=p.pending_jobs,
                               running_jobs=p.running_jobs)
