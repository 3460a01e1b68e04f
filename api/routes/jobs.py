"""``/api/jobs``: submit and read jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import ServiceDep, SettingsDep
from api.schemas import MAX_JOB_ID, ErrorResponse, JobOut, SubmitRequest, SubmitResponse
from conductor import jobs
from conductor.exceptions import InvalidJobSpec

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
_ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}


@router.post("/submit", response_model=SubmitResponse, responses=_ERRORS, summary="Submit a batch job")
def submit(body: SubmitRequest, service: ServiceDep, settings: SettingsDep) -> SubmitResponse:
    """Store the job as PENDING and queue it; returns its id.  Nothing is stored when the request is refused."""
    job = service.submit(to_spec(body, default_dir=str(settings.state_dir)))
    return SubmitResponse(job_id=job.id, job=JobOut.from_job(job))


@router.get("/{job_id}", response_model=JobOut, responses=_ERRORS, summary="Get one job")
def get_job(job_id: Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="Job id.")],
            service: ServiceDep) -> JobOut:
    return JobOut.from_job(service.get(job_id))


def to_spec(body: SubmitRequest, *, default_dir: str) -> jobs.JobSpec:
    """The domain's JobSpec for a request body (the script may sit at either of its two places)."""
    desc = body.job
    if body.script is not None and desc.script is not None and body.script != desc.script:
        raise InvalidJobSpec("script", "given both as script and as job.script, with different contents")
    script = body.script if body.script is not None else desc.script
    if script is None:
        raise InvalidJobSpec("script", "is required")
    return jobs.JobSpec(
        script=script, name=desc.name, account=desc.account, partition=desc.partition, user=desc.user,
        argv=tuple(desc.argv), working_dir=desc.current_working_directory or default_dir,
        environment=desc.environment or {}, cpus_per_task=desc.cpus_per_task,
        ntasks_per_node=desc.ntasks_per_node, memory_per_node_mb=desc.memory_per_node or 0,
        time_limit_s=desc.time_limit, priority=desc.priority, nice=desc.nice, requeue=desc.requeue,
        stdout_pattern=desc.standard_output, stderr_pattern=desc.standard_error)
