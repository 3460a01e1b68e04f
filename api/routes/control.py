"""``/api/jobs/.../cancel|hold|release|requeue``: changing what jobs do (scancel, scontrol)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import CallerDep, ServiceDep, visible_job
from api.schemas import MAX_JOB_ID, ControlResponse, ErrorResponse
from conductor.exceptions import Forbidden
from conductor.signals import signal_number

router = APIRouter(prefix="/api/jobs", tags=["control"])
_ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
JobIdPath = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="Job id (an array's id stands for all its tasks).")]


@router.post("/{job_id}/cancel", response_model=ControlResponse, responses=_ERRORS, summary="Cancel or signal a job")
def cancel(job_id: JobIdPath, service: ServiceDep, caller: CallerDep,
           signal: Annotated[str | None, Query(description="Send this signal to the running job instead of "
                                                           "ending it (scancel -s).", examples=["USR1"])] = None
           ) -> ControlResponse:
    """Pending: CANCELLED at once.  Running: SIGTERM to its process group, SIGKILL after KillWait, CANCELLED."""
    number = signal_number(signal) if signal is not None else None
    visible_job(service, caller, job_id)
    return ControlResponse(**service.cancel([job_id], signal_number=number))


@router.post("/{job_id}/hold", response_model=ControlResponse, responses=_ERRORS, summary="Hold a pending job")
def hold(job_id: JobIdPath, service: ServiceDep, caller: CallerDep,
         admin: Annotated[bool, Query(description="Hold as admin (JobHeldAdmin): admins only.")] = False
         ) -> ControlResponse:
    visible_job(service, caller, job_id)
    if admin and not caller.admin:
        raise Forbidden("hold", "only an admin may hold as admin")
    return ControlResponse(held=service.hold([job_id], admin=admin))


@router.post("/{job_id}/release", response_model=ControlResponse, responses=_ERRORS, summary="Release a held job")
def release(job_id: JobIdPath, service: ServiceDep, caller: CallerDep) -> ControlResponse:
    job = visible_job(service, caller, job_id)
    if job.spec.hold == "admin" and not caller.admin:
        raise Forbidden("hold", "held by an admin: only an admin may release it")
    return ControlResponse(released=service.release([job_id]))


@router.post("/{job_id}/requeue", response_model=ControlResponse, responses=_ERRORS, summary="Requeue a job")
def requeue(job_id: JobIdPath, service: ServiceDep, caller: CallerDep) -> ControlResponse:
    """Running: stopped and back to PENDING.  Ended: back to PENDING.  The restart count grows."""
    visible_job(service, caller, job_id)
    return ControlResponse(**service.requeue([job_id]))
