"""``/slurm/v0.0.*/...``: the request plumbing and the route table, served once per version.

Paths and shapes are slurmrestd's (``api.slurm``'s modules say where each comes from).  The route
table (``ROUTES``) and the versions (``api.slurm.versions.VERSIONS``) are data: every route is
added for every version by one loop, and where versions differ is a field of ``Version`` read by
``api.slurm.schemas``.  Every answer, refusals included, takes Slurm's shape
``{..., "meta", "errors": [{description, error_number, error, source}], "warnings"}``: 422 for bad
input (the description names the field), 404 for an unknown job, 401/403 when authentication says
so (``ping/`` too, as slurmrestd authenticates every request), 503 when the database or queue is
unavailable.  GET /jobs/ lists what slurmctld would: pending and running jobs plus jobs that ended
within MinJobAge (300 s); GET /job/{id} reads any stored job.  The caller is the Bearer token's, or
Slurm's X-SLURM-USER-NAME / X-SLURM-USER-TOKEN pair's.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import SLURM_USER_NAME_HEADER, caller_of
from api.errors import count_unavailable
from api.slurm import ops, schemas
from api.slurm.error_numbers import (ESLURM_REST_FAIL_PARSING, ESLURM_REST_INVALID_JOBS_DESC,
                                     ESLURM_REST_UNKNOWN_URL, SLURM_ERROR)
from api.slurm.schemas import MIN_JOB_AGE_S, SlurmError, Warnings
from api.slurm.translate import translate
from api.slurm.versions import BY_NAME, NEWEST, VERSIONS, Version
from conductor import jobs
from conductor.config import Settings
from conductor.exceptions import ConductorError
from conductor.service import JobService

log = logging.getLogger(__name__)

router = APIRouter(tags=["slurmrestd"])


# -- plumbing ----------------------------------------------------------------------------------


def _meta(request: Request, version: Version) -> dict[str, Any]:
    client = request.client
    return schemas.meta(version, client=f"[{client.host}]:{client.port}" if client else "",
                        user=request.headers.get(SLURM_USER_NAME_HEADER, ""))


def _reply(request: Request, version: Version, body: dict[str, Any], warnings: Warnings | None = None) -> JSONResponse:
    content = {**body, "meta": _meta(request, version), "errors": [],
               "warnings": warnings.items if warnings else []}
    return JSONResponse(content)


def _error_reply(request: Request, version: Version, error: SlurmError, body: dict[str, Any] | None = None) -> JSONResponse:
    content = {**(body or {}), **schemas.error_content(_meta(request, version), error)}
    return JSONResponse(content, status_code=error.status, headers=error.headers)


async def _run(request: Request, version: Version, work: Callable[[], JSONResponse]) -> JSONResponse:
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
#
# Each takes the request, the version and what the endpoint read before the thread pool (the
# parsed body of a POST, the {job_id} of a path); each authenticates first.


def _submit(request: Request, version: Version, body: Any) -> JSONResponse:
    caller = caller_of(request)
    translation = translate(body, version=version.name,
                            user=request.headers.get(SLURM_USER_NAME_HEADER, "").strip())
    job_id = ops.submit(_service(request), caller, translation, default_dir=str(_settings(request).state_dir))
    return _reply(request, version, schemas.submit_response(version, job_id), translation.warnings)


def _jobs_reply(request: Request, version: Version, found: list[jobs.Job]) -> JSONResponse:
    service = _service(request)
    waiting_on, priorities = service.dependency_states(found), service.slurm_priorities(found)
    infos = [schemas.job_info(job, version, priority=priorities.get(job.id, 0),
                              dependency_state=waiting_on.get(job.id)) for job in found]
    return _reply(request, version, schemas.jobs_response(version, infos, int(time.time())))


def _list(request: Request, version: Version, _: Any) -> JSONResponse:
    caller = caller_of(request)
    found = ops.current_jobs(_service(request))
    return _jobs_reply(request, version, [job for job in found if caller.may_see(job.spec.user)])


def _get(request: Request, version: Version, job_id: str) -> JSONResponse:
    caller = caller_of(request)
    return _jobs_reply(request, version, ops.visible(caller, ops.resolve(_service(request), job_id), job_id))


def _delete(request: Request, version: Version, job_id: str) -> JSONResponse:
    service = _service(request)
    targets = ops.visible(caller_of(request), ops.resolve(service, job_id), job_id)
    warnings = Warnings()
    if request.query_params.get("flags"):
        warnings.add("flags", "flags are not implemented by conductor; ignored")
    status = ops.cancel(service, targets, request.query_params.get("signal"), warnings)
    return _reply(request, version, {"status": status} if version.kill_status else {}, warnings)


def _ping(request: Request, version: Version, _: Any) -> JSONResponse:
    caller_of(request)  # slurmrestd authenticates every request: no token, no ping (401)
    latency_us, failure = ops.ping(_service(request))
    pings = [schemas.controller_ping(version, _settings(request).node_name, failure is None, latency_us)]
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


@dataclass(frozen=True)
class Route:
    """One slurmrestd endpoint: added under every version's prefix, its work run in the thread pool."""

    method: str
    path: str  #: under /slurm/<version>/; "{job_id}" makes the endpoint take it
    work: Callable[[Request, Version, Any], JSONResponse]
    summary: str
    description: str = ""
    aliases: tuple[str, ...] = ()  #: the same endpoint at other paths (slurmrestd takes both), not documented
    openapi_extra: dict[str, Any] | None = None
    reads_body: bool = False

    def endpoint(self, version: Version) -> Callable:
        """The endpoint of this route for ``version``: read what is needed on the loop, run the work."""
        if self.reads_body:
            async def with_body(request: Request) -> JSONResponse:
                try:
                    body = await _read_json(request)
                except SlurmError as exc:
                    return _error_reply(request, version, exc)
                return await _run(request, version, lambda: self.work(request, version, body))
            return with_body
        if "{job_id}" in self.path:
            async def with_job_id(request: Request, job_id: str) -> JSONResponse:
                return await _run(request, version, lambda: self.work(request, version, job_id))
            return with_job_id

        async def plain(request: Request) -> JSONResponse:
            return await _run(request, version, lambda: self.work(request, version, None))
        return plain


ROUTES: tuple[Route, ...] = (
    Route("POST", "job/submit", _submit, "Submit a batch job", reads_body=True,
          description="Slurm's job_submit_req: `{\"job\": job_desc_msg, \"script\": deprecated}`. Fields conductor "
                      "does not implement are accepted and named in `warnings`.",
          openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
              "schema": {"type": "object"}, "example": _SUBMIT_EXAMPLE}}}}),
    Route("GET", "jobs/", _list, "List current jobs", aliases=("jobs",),
          description=f"Pending and running jobs, and jobs that ended in the last {MIN_JOB_AGE_S} s (Slurm's "
                      "MinJobAge)."),
    Route("GET", "job/{job_id}", _get, "Get a job",
          description="`42`, or `40_2` for task 2 of array 40; an array's id lists all its tasks."),
    Route("DELETE", "job/{job_id}", _delete, "Cancel or signal a job",
          description="Without `signal` (or with KILL) the job is cancelled; with another signal a running job "
                      "only receives it."),
    Route("GET", "ping/", _ping, "Ping", aliases=("ping",),
          description="The controller (conductor's database and queue) and how long asking took. Needs a token "
                      "when AUTH=token, as every slurmrestd request does."),
)


def _add(route: Route, version: Version) -> None:
    endpoint = route.endpoint(version)
    for path, documented in ((route.path, True), *((alias, False) for alias in route.aliases)):
        router.add_api_route(f"/slurm/{version.name}/{path}", endpoint, methods=[route.method],
                             include_in_schema=documented, responses=_ERRORS_DOC,
                             summary=f"{route.summary} (slurmrestd {version.name})", description=route.description,
                             openapi_extra=route.openapi_extra if documented else None)


for _version in VERSIONS:
    for _route in ROUTES:
        _add(_route, _version)


@router.api_route("/slurm/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
async def unknown_endpoint(request: Request, rest: str) -> JSONResponse:
    """Anything else under /slurm/: Slurm's 404, in Slurm's shape."""
    version = BY_NAME.get(rest.split("/", 1)[0], NEWEST)
    served = ", ".join(dict.fromkeys(route.path for route in ROUTES))
    return _error_reply(request, version, SlurmError(
        404, ESLURM_REST_UNKNOWN_URL, f"{request.method} {request.url.path}: conductor serves {served} under "
                                      f"/slurm/{'|'.join(v.name for v in VERSIONS)}",
        request.url.path))
