"""``/api/jobs/.../cancel|hold|release|requeue``: changing what jobs do (scancel, scontrol)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CallerDep, JobRefDep, ServiceDep, visible_ref
from api.schemas import ControlResponse, ErrorResponse, JobUpdate
from conductor.exceptions import Forbidden
from conductor.signals import signal_number

router = APIRouter(prefix="/api/jobs", tags=["control"])
_ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
JobIdPath = JobRefDep  #: 42 (an array's id stands for all its tasks) or 40_2 (that task alone)


@router.post("/{job_id}/cancel", response_model=ControlResponse, responses=_ERRORS, summary="Cancel or signal a job")
def cancel(job_id: JobIdPath, service: ServiceDep, caller: CallerDep,
           signal: Annotated[str | None, Query(description="Send this signal to the running job instead of "
                                                           "ending it (scancel -s).", examples=["USR1"])] = None
           ) -> ControlResponse:
    """Pending: CANCELLED at once.  Running: SIGTERM to its process group, SIGKILL after KillWait, CANCELLED."""
    number = signal_number(signal) if signal is not None else None
    visible_ref(service, caller, job_id)
    return ControlResponse(**service.cancel(service.resolve([job_id]), signal_number=number, expand=False))


@router.post("/{job_id}/hold", response_model=ControlResponse, responses=_ERRORS, summary="Hold a pending job")
def hold(job_id: JobIdPath, service: ServiceDep, caller: CallerDep,
         admin: Annotated[bool, Query(description="Hold as admin (JobHeldAdmin): admins only.")] = False
         ) -> ControlResponse:
    visible_ref(service, caller, job_id)
    if admin and not caller.admin:
        raise Forbidden("hold", "only an admin may hold as admin")
    return ControlResponse(held=service.hold(service.resolve([job_id]), admin=admin, expand=False))


@router.post("/{job_id}/release", response_model=ControlResponse, responses=_ERRORS, summary="Release a held job")
def release(job_id: JobIdPath, service: ServiceDep, caller: CallerDep) -> ControlResponse:
    job = visible_ref(service, caller, job_id)
    if job.spec.hold == "admin" and not caller.admin:
        raise Forbidden("hold", "held by an admin: only an admin may release it")
    return ControlResponse(released=service.release(service.resolve([job_id]), expand=False))


@router.post("/{job_id}/requeue", response_model=ControlResponse, responses=_ERRORS, summary="Requeue a job")
def requeue(job_id: JobIdPath, service: ServiceDep, caller: CallerDep) -> ControlResponse:
    """Running: stopped and back to PENDING.  Ended: back to PENDING.  The restart count grows."""
    visible_ref(service, caller, job_id)
    return ControlResponse(**service.requeue(service.resolve([job_id]), expand=False))


@router.patch("/{job_id}", response_model=ControlResponse, responses=_ERRORS, summary="Update a pending job")
def update(job_id: JobIdPath, body: JobUpdate, service: ServiceDep, caller: CallerDep) -> ControlResponse:
    """scontrol update: the time limit, priority, nice, comment or name of pending jobs (an array's id: every
    task).  As in Slurm, only an admin may raise a time limit, set the priority or a negative nice."""
    job = visible_ref(service, caller, job_id)
    changes = body.model_dump(exclude_none=True)
    if "time_limit" in changes:
        changes["time_limit_s"] = changes.pop("time_limit") or None
    if not caller.admin:
        _refuse_raises(job.spec.time_limit_s, changes)
    return ControlResponse(updated=service.update_pending(service.resolve([job_id]), changes))


def _refuse_raises(current_s: int | None, changes: dict) -> None:
    """What Slurm lets only an operator do: set a priority, a negative nice, a longer time limit."""
    if "priority" in changes:
        raise Forbidden("priority", "only an admin may set a job's priority")
    if changes.get("nice", 0) < 0:
        raise Forbidden("nice", "only an admin may set a negative nice value")
    if "time_limit_s" in changes:
        new_s = changes["time_limit_s"]
        if current_s is not None and (new_s is None or new_s > current_s):
            raise Forbidden("time_limit", "only an admin may raise a job's time limit")
