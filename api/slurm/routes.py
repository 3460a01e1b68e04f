"""``/slurm/v0.0.4x/...``: the request plumbing and the routes of each version served.

Paths and shapes are slurmrestd's (``api.slurm``'s modules say where each comes from).  The
versions differ here only where Slurm's do: the v0.0.40/41 submit response also carries
``result``, and v0.0.40's DELETE has no ``status``.  Every answer, refusals included, takes
Slurm's shape ``{..., "meta", "errors": [{description, error_number, error, source}], "warnings"}``:
422 for bad input (the description names the field), 404 for an unknown job, 401/403 when
authentication says so, 503 when the database or queue is unavailable.  GET /jobs/ lists what
slurmctld would: pending and running jobs plus jobs that ended within MinJobAge (300 s); GET
/job/{id} reads any stored job.  The caller is the Bearer token's, or Slurm's
X-SLURM-USER-NAME / X-SLURM-USER-TOKEN pair's.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SLURM_USER_NAME_HEADER, caller_of
from api.errors import count_unavailable
from api.slurm import ops, schemas
from api.slurm.error_numbers import (ESLURM_REST_FAIL_PARSING, ESLURM_REST_INVALID_JOBS_DESC,
                                     ESLURM_REST_UNKNOWN_URL, SLURM_ERROR)
from api.slurm.schemas import MIN_JOB_AGE_S, VERSIONS, WITH_KILL_STATUS, SlurmError, Warnings
from api.slurm.translate import translate
from conductor import jobs
from conductor.config import Settings
from conductor.exceptions import ConductorError
from conductor.service import JobService

log = logging.getLogger(__name__)

router = APIRouter(tags=["slurmrestd"])


# -- plumbing ----------------------------------------------------------------------------------


def _meta(request: Request, version: str) -> dict[str, Any]:
    client = request.client
    return schemas.meta(version, client=f"[{client.host}]:{client.port}" if client else "",
                        user=request.headers.get(SLURM_USER_NAME_HEADER, ""))


def _reply(request: Request, version: str, body: dict[str, Any], warnings: Warnings | None = None) -> JSONResponse:
    content = {**body, "meta": _meta(request, version), "errors": [],
               "warnings": warnings.items if warnings else []}
    return JSONResponse(content)


def _error_reply(request: Request, version: str, error: SlurmError, body: dict[str, Any] | None = None) -> JSONResponse:
    content = {**(body or {}), **schemas.error_content(_meta(request, version), error)}
    return JSONResponse(content, status_code=error.status, headers=error.headers)


async def _run(request: Request, version: str, work: Callable[[], JSONResponse]) -> JSONResponse:
    """Run the (blocking) work in the thread pool; every failure answers in Slurm's shape."""
    try:
        return await run_in_threadpool(work)
    except SlurmError as exc:
        return _error_reply(request, version, exc)
    except ConductorError as exc:
        count_unavailable(request, exc)
        return _error_reply(request, version, ops.slurm_error(exc))
    except Exception:  # noqa: BLE001 - a Slurm client must get Slurm's shape, whatever happened
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _error_reply(request, version, SlurmError(500, SLURM_ERROR, "internal error", "conductor"))


def _service(request: Request) -> JobService:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# -- the work of each route (run in the thread pool) -------------------------------------------


def _submit(request: Request, version: str, body: Any) -> JSONResponse:
    caller = caller_of(request)
    translation = translate(body, version=version, user=request.headers.get(SLURM_USER_NAME_HEADER, "").strip())
    job_id = ops.submit(_service(request), caller, translation, default_dir=str(_settings(request).state_dir))
    return _reply(request, version, schemas.submit_response(version, job_id), translation.warnings)


def _jobs_reply(request: Request, version: str, found: list[jobs.Job]) -> JSONResponse:
    now = schemas.no_val(int(time.time()))
    waiting_on = _service(request).dependency_states(found)
    return _reply(request, version, {"jobs": [schemas.job_info(job, waiting_on.get(job.id)) for job in found],
                                     "last_backfill": now, "last_update": now})


def _list(request: Request, version: str) -> JSONResponse:
    caller = caller_of(request)
    found = ops.current_jobs(_service(request))
    return _jobs_reply(request, version, [job for job in found if caller.may_see(job.spec.user)])


def _get(request: Request, version: str, job_id: str) -> JSONResponse:
    caller = caller_of(request)
    return _jobs_reply(request, version, ops.visible(caller, ops.resolve(_service(request), job_id), job_id))


def _delete(request: Request, version: str, job_id: str) -> JSONResponse:
    service = _service(request)
    targets = ops.visible(caller_of(request), ops.resolve(service, job_id), job_id)
    warnings = Warnings()
    if request.query_params.get("flags"):
        warnings.add("flags", "flags are not implemented by conductor; ignored")
    status = ops.cancel(service, targets, request.query_params.get("signal"), warnings)
    return _reply(request, version, {"status": status} if version in WITH_KILL_STATUS else {}, warnings)


def _ping(request: Request, version: str) -> JSONResponse:
    latency_us, failure = ops.ping(_service(request))
    pings = [schemas.controller_ping(_settings(request).node_name, failure is None, latency_us)]
    if failure is None:
        return _reply(request, version, {"pings": pings})
    return _error_reply(request, version, ops.slurm_error(failure), {"pings": pings})


# -- routes ------------------------------------------------------------------------------------


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC, "body: is empty; expected a JSON object with a job", "#/")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SlurmError(422, ESLURM_REST_FAIL_PARSING, f"body: is not valid UTF-8 JSON ({exc})", "#/") from None


_SUBMIT_EXAMPLE = {
    "job": {"name": "test", "tasks": 1, "cpus_per_task": 2, "memory_per_node": {"set": True, "number": 1024},
            "time_limit": {"set": True, "number": 30}, "current_working_directory": "/tmp",
            "environment": ["PATH=/bin:/usr/bin/:/usr/local/bin/"], "script": "#!/bin/bash\necho it works"},
}
_SLURM_ERROR_DOC = {"description": "Slurm's error shape: {errors: [{description, error_number, error, source}], "
                                   "warnings, meta}"}
_ERRORS_DOC = {404: _SLURM_ERROR_DOC, 422: _SLURM_ERROR_DOC, 503: _SLURM_ERROR_DOC}


def _add_version(version: str) -> None:
    prefix = f"/slurm/{version}"

    async def submit(request: Request) -> JSONResponse:
        try:
            body = await _read_json(request)
        except SlurmError as exc:
            return _error_reply(request, version, exc)
        return await _run(request, version, lambda: _submit(request, version, body))

    async def list_jobs(request: Request) -> JSONResponse:
        return await _run(request, version, lambda: _list(request, version))

    async def get_job(request: Request, job_id: str) -> JSONResponse:
        return await _run(request, version, lambda: _get(request, version, job_id))

    async def delete_job(request: Request, job_id: str) -> JSONResponse:
        return await _run(request, version, lambda: _delete(request, version, job_id))

    async def ping(request: Request) -> JSONResponse:
        return await _run(request, version, lambda: _ping(request, version))

    router.add_api_route(
        f"{prefix}/job/submit", submit, methods=["POST"], summary=f"Submit a batch job (slurmrestd {version})",
        responses=_ERRORS_DOC, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}, "example": _SUBMIT_EXAMPLE}}}},
        description="Slurm's job_submit_req: `{\"job\": job_desc_msg, \"script\": deprecated}`. Fields conductor "
                    "does not implement are accepted and named in `warnings`.")
    for path, include in ((f"{prefix}/jobs/", True), (f"{prefix}/jobs", False)):
        router.add_api_route(path, list_jobs, methods=["GET"], include_in_schema=include, responses=_ERRORS_DOC,
                             summary=f"List current jobs (slurmrestd {version})",
                             description="Pending and running jobs, and jobs that ended in the last "
                                         f"{MIN_JOB_AGE_S} s (Slurm's MinJobAge).")
    router.add_api_route(f"{prefix}/job/{{job_id}}", get_job, methods=["GET"], responses=_ERRORS_DOC,
                         summary=f"Get a job (slurmrestd {version})",
                         description="`42`, or `40_2` for task 2 of array 40; an array's id lists all its tasks.")
    router.add_api_route(f"{prefix}/job/{{job_id}}", delete_job, methods=["DELETE"], responses=_ERRORS_DOC,
                         summary=f"Cancel or signal a job (slurmrestd {version})",
                         description="Without `signal` (or with KILL) the job is cancelled; with another signal "
                                     "a running job only receives it.")
    for path, include in ((f"{prefix}/ping/", True), (f"{prefix}/ping", False)):
        router.add_api_route(path, ping, methods=["GET"], include_in_schema=include, responses=_ERRORS_DOC,
                             summary=f"Ping (slurmrestd {version})")


for _version in VERSIONS:
    _add_version(_version)


@router.api_route("/slurm/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
async def unknown_endpoint(request: Request, rest: str) -> JSONResponse:
    """Anything else under /slurm/: Slurm's 404, in Slurm's shape."""
    version = rest.split("/", 1)[0] if rest.split("/", 1)[0] in VERSIONS else VERSIONS[-1]
    return _error_reply(request, version, SlurmError(
        404, ESLURM_REST_UNKNOWN_URL, f"{request.method} {request.url.path}: conductor serves "
                                      f"job/submit, jobs/, job/{{job_id}} and ping/ under /slurm/{'|'.join(VERSIONS)}",
        request.url.path))
