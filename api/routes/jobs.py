"""``/api/jobs``: submit and read jobs."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, JobRefDep, ServiceDep, SettingsDep, visible_ref
from api.schemas import ErrorResponse, JobOut, SubmitRequest, SubmitResponse
from conductor import arrays, jobs
from conductor.auth import Caller
from conductor.config import Settings
from conductor.exceptions import InvalidJobSpec
from conductor.service import JobService

from fastapi import Query  # noqa: E402,I001 - the listing and output routes' imports, kept apart
from fastapi.responses import PlainTextResponse  # noqa: E402
from api.schemas import JobListQuery, JobListResponse, OutputQuery  # noqa: E402
from conductor import output  # noqa: E402
from conductor.db.listing import JobFilter  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402 - the batch route's imports
from api.schemas import BatchSubmitRequest, BatchSubmitResponse  # noqa: E402

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
_ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
#: A submit may also be refused a field (an account, priority, run_as): 403 naming it.
_SUBMIT_ERRORS = {**_ERRORS, 403: {"model": ErrorResponse}}


@router.post("/submit", response_model=SubmitResponse, responses=_SUBMIT_ERRORS, summary="Submit a batch job")
async def submit(body: SubmitRequest, service: ServiceDep, settings: SettingsDep, caller: CallerDep) -> Response:
    """Store the job as PENDING and queue it; returns its id.  Nothing is stored when the request is refused."""
    # async: the checks below are pure and run on the event loop; the database and queue work is
    # the one hand-off to the thread pool (a sync route costs two more: itself and its response).
    spec = caller.check_submit(body.to_spec(default_dir=str(settings.state_dir)))
    if body.job.array is None:
        job = await run_in_threadpool(service.submit, spec)
        return json_response(SubmitResponse(job_id=job.id, job=JobOut.from_job(job)))
    tasks = await run_in_threadpool(service.submit_array, spec, arrays.parse(body.job.array))
    return json_response(SubmitResponse(job_id=tasks[0].id, job=JobOut.from_job(tasks[0]),
                                        array_task_ids=[task.id for task in tasks]))


@router.post("/batch", response_model=BatchSubmitResponse, responses=_SUBMIT_ERRORS, summary="Submit many batch jobs")
async def submit_batch(body: BatchSubmitRequest, service: ServiceDep, settings: SettingsDep,
                       caller: CallerDep) -> Response:
    """All or nothing: every job is checked first (a 422 names the item, e.g. ``jobs.3.job.cpus_per_task``),
    then all are stored in one transaction and queued in one push; returns their ids in request order."""
    stored = await run_in_threadpool(_submit_batch, body, service, settings, caller)
    return json_response(BatchSubmitResponse(job_ids=[job.id for job in stored]))


def _submit_batch(body: BatchSubmitRequest, service: JobService, settings: Settings,
                  caller: Caller) -> list[jobs.Job]:
    specs = []
    for index, item in enumerate(body.jobs):
        if item.job.array is not None:
            raise _item_error(index, "array", "job arrays are submitted one at a time to /api/jobs/submit")
        try:
            specs.append(caller.check_submit(item.to_spec(default_dir=str(settings.state_dir))))
        except InvalidJobSpec as exc:
            raise _item_error(index, exc.field, exc.reason) from None
    try:
        return service.submit_many(specs)
    except InvalidJobSpec as exc:
        raise _item_error(getattr(exc, "index", 0), exc.field, exc.reason) from None


def json_response(model: BaseModel) -> Response:
    """The model as the JSON body FastAPI would make of it for ``response_model``, without validating
    it a second time (it was validated when it was built from the stored job)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _item_error(index: int, field: str, reason: str) -> RequestValidationError:
    """A 422 naming the field of one batch item as the body path (``jobs.3.job.cpus_per_task``)."""
    path = ("script",) if field == "script" else ("job", *field.split("."))
    return RequestValidationError([{"loc": ("body", "jobs", index, *path), "msg": reason, "type": "value_error"}])


@router.get("/{job_id}", response_model=JobOut, responses=_ERRORS, summary="Get one job")
def get_job(job_id: JobRefDep, service: ServiceDep, caller: CallerDep) -> JobOut:
    """The job: ``42``, or ``40_2`` for task 2 of array 40 (an array's own id is its first task)."""
    job = visible_ref(service, caller, job_id)
    return JobOut.from_job(job, service.priority_factors([job]).get(job.id),
                           service.dependency_states([job]).get(job.id))


@router.get("", response_model=JobListResponse, responses=_ERRORS, summary="List jobs (squeue, sacct)")
def list_jobs(query: Annotated[JobListQuery, Query()], service: ServiceDep, caller: CallerDep) -> JobListResponse:
    """Jobs matching every given filter, in id order, one page at a time: pass next_cursor back as
    cursor until it is null.  A user (not an admin) sees only their own jobs.
    Example: ``GET /api/jobs?state=PENDING&state=RUNNING&user=alice``."""
    wanted = job_filter(query)
    if not caller.admin:
        wanted = replace(wanted, users=[caller.name])
    found, next_cursor = service.list_jobs(wanted, cursor=query.cursor, limit=query.limit)
    factors, waiting_on = service.priority_factors(found), service.dependency_states(found)
    return JobListResponse(jobs=[JobOut.from_job(job, factors.get(job.id), waiting_on.get(job.id)) for job in found],
                           next_cursor=next_cursor)


_OUTPUT_HEADERS = {
    "X-Conductor-Output-Size": "Bytes in the file when it was read (0: no file yet).",
    "X-Conductor-Output-Offset": "Byte offset of the first byte returned.",
    "X-Conductor-Output-Next-Offset": "Offset to ask for next when following the file.",
    "X-Conductor-Job-State": "The job's state, read just before the file: once it is final and the next "
                             "offset equals the size, the whole output has been read.",
}


# The route's default media type stays JSON so that its errors are documented as JSON; the
# 200 body is text/plain, documented here.
@router.get("/{job_id}/output", summary="Read a job's stdout or stderr",
            responses={**_ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"},
                                                                   "example": "epoch 1 loss 0.31\n"}},
                                        "headers": {name: {"description": text, "schema": {"type": "string"}}
                                                    for name, text in _OUTPUT_HEADERS.items()}}})
def get_output(job_id: JobRefDep, query: Annotated[OutputQuery, Query()], service: ServiceDep,
               caller: CallerDep) -> PlainTextResponse:
    """The job's output as UTF-8 text (undecodable bytes replaced), read on the API's host: jobs that ran on
    another node need a shared output directory.  Example: ``GET /api/jobs/42/output?tail=4096``."""
    job_id = visible_ref(service, caller, job_id).id
    chunk = service.read_output(job_id, query.stream, offset=query.offset, limit_bytes=query.limit,
                                tail_bytes=query.tail)
    data, start = chunk.data, chunk.offset
    if query.tail is not None:  # the tail may begin inside a character
        skip = output.skip_partial_leading_char(data)
        data, start = data[skip:], start + skip
    if not (chunk.job.state.is_terminal() and start + len(data) >= chunk.size_bytes):
        data = data[:len(data) - output.incomplete_trailing_char(data)]  # its end comes with the next read
    headers = {"X-Conductor-Output-Size": str(chunk.size_bytes), "X-Conductor-Output-Offset": str(start),
               "X-Conductor-Output-Next-Offset": str(start + len(data)),
               "X-Conductor-Job-State": chunk.job.state.value}
    return PlainTextResponse(data.decode("utf-8", errors="replace"), headers=headers)


def job_filter(query: JobListQuery) -> JobFilter:
    """The listing's filter for a list query."""
    return JobFilter(
        ids=query.job_id, states=[jobs.JobState(name) for name in query.state], users=query.user,
        accounts=query.account, partitions=query.partition, names=query.name, submitted_since=query.since,
        submitted_until=query.until, ended_since=query.ended_since, ended_until=query.ended_until,
        refs=[jobs.parse_job_ref(text) for text in query.job])
