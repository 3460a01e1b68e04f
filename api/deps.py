"""Annotated dependencies for the routers: the service, the settings, and the caller.

They are ``async def`` so that FastAPI calls them on the event loop: a plain ``def`` dependency
costs a hand-off to the thread pool and back for every request (measured: about 0.2 ms of
server CPU each on a submit).  Only the token lookup (AUTH=token) touches the database, and it
alone goes to the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from conductor import jobs
from conductor.auth import TRUSTED, Caller, TokenStore
from conductor.config import Settings
from conductor.exceptions import JobNotFound, NotAuthenticated
from conductor.service import JobService


async def _service(request: Request) -> JobService:
    return request.app.state.service


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _tokens(request: Request) -> TokenStore:
    store = getattr(request.app.state, "tokens", None)
    if store is None:
        store = request.app.state.tokens = request.app.state.service.token_store()
    return store


#: slurmrestd's authentication headers (auth/jwt): the user's name and their token.
SLURM_USER_NAME_HEADER = "X-SLURM-USER-NAME"
SLURM_USER_TOKEN_HEADER = "X-SLURM-USER-TOKEN"

_BEARER = HTTPBearer(auto_error=False, description="An API token (conductor token create), when AUTH=token.")
_SLURM_NAME = APIKeyHeader(name=SLURM_USER_NAME_HEADER, auto_error=False, description="Slurm's user name header.")
_SLURM_TOKEN = APIKeyHeader(name=SLURM_USER_TOKEN_HEADER, auto_error=False, description="Slurm's token header.")


async def _caller_from_security(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
    x_slurm_user_name: Annotated[str | None, Depends(_SLURM_NAME)] = None,
    x_slurm_user_token: Annotated[str | None, Depends(_SLURM_TOKEN)] = None,
) -> Caller:
    if not request.app.state.settings.auth_enabled:
        return TRUSTED
    authorization = f"Bearer {bearer.credentials}" if bearer else None
    if authorization is None and x_slurm_user_token is None and (token := session_token(request)):
        authorization = f"Bearer {token}"
    return await run_in_threadpool(_caller, request, authorization=authorization,
                                   x_slurm_user_name=x_slurm_user_name, x_slurm_user_token=x_slurm_user_token)


def _caller(request: Request, *, authorization: str | None, x_slurm_user_name: str | None,
            x_slurm_user_token: str | None) -> Caller:
    """TRUSTED when authentication is off; else the token's user, or 401."""
    if not request.app.state.settings.auth_enabled:
        return TRUSTED
    tokens = _tokens(request)
    if authorization and authorization.lower().startswith("bearer "):
        caller = tokens.authenticate(authorization[7:].strip())
    elif x_slurm_user_token:
        caller = tokens.authenticate(x_slurm_user_token, user=x_slurm_user_name)
    else:
        caller = None
    if caller is None:
        raise NotAuthenticated("a valid token is required: Authorization: Bearer <token>")
    return caller


#: The web page's cookie (api/web sets it at sign-in, HttpOnly and SameSite=Strict): an API token, so that
#: the page's EventSource, which cannot send an Authorization header, is authenticated too.
SESSION_COOKIE = "conductor_session"


def session_token(request: Request) -> str | None:
    """The session cookie's token, on reads only: the web page is read-only, so a cookie never submits,
    cancels or changes anything, and there is no cross-site request forgery to guard against."""
    if request.method not in ("GET", "HEAD"):
        return None
    return request.cookies.get(SESSION_COOKIE) or None


def token_caller(request: Request, token: str) -> Caller | None:
    """The caller ``token`` stands for, or None (the web page's sign-in).  Blocking: the thread pool."""
    return _tokens(request).authenticate(token)


def caller_of(request: Request) -> Caller:
    """The caller of a request read from its headers, for code that has the Request but no dependencies.

    Blocking with AUTH=token (the token lookup reads the database): call it from the thread pool.
    """
    headers = request.headers
    return _caller(request, authorization=headers.get("authorization"),
                   x_slurm_user_name=headers.get(SLURM_USER_NAME_HEADER),
                   x_slurm_user_token=headers.get(SLURM_USER_TOKEN_HEADER))


ServiceDep = Annotated[JobService, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
CallerDep = Annotated[Caller, Depends(_caller_from_security)]


def visible_job(service: JobService, caller: Caller, job_id: int):  # noqa: ANN201 - a jobs.Job
    """The job, if the caller may see it; otherwise 404, as if it did not exist (no id probing)."""
    job = service.get(job_id)
    if not caller.may_see(job.spec.user):
        raise JobNotFound(job_id)
    return job


#: Largest job id a path may name (the database's integer column).
_MAX_JOB_ID = 2**31 - 1


async def _job_ref(job_id: Annotated[str, Path(
        pattern=r"^[0-9]+(_[0-9]+)?$", max_length=24, examples=["42", "40_2"],
        description="Job id: 42, or 40_2 for task 2 of array job 40 (an array's id stands for all its "
                    "tasks where the operation takes several).")]) -> jobs.JobRef:
    try:
        ref = jobs.parse_job_ref(job_id)
    except ValueError as exc:  # e.g. 0, which the pattern allows: job ids start at 1
        raise RequestValidationError([{"loc": ("path", "job_id"), "type": "value_error", "msg": str(exc)}]) from None
    if ref.job_id > _MAX_JOB_ID or (ref.task_id or 0) > _MAX_JOB_ID:
        raise RequestValidationError([{"loc": ("path", "job_id"), "type": "value_error",
                                       "msg": f"{job_id}: job ids are at most {_MAX_JOB_ID}"}])
    return ref


#: A ``{job_id}`` path parameter as Slurm names jobs (``42``, ``40_2``).
JobRefDep = Annotated[jobs.JobRef, Depends(_job_ref)]


def visible_ref(service: JobService, caller: Caller, ref: jobs.JobRef):  # noqa: ANN201 - a jobs.Job
    """The job ``ref`` names, if the caller may see it; otherwise 404, as if it did not exist."""
    job = service.get_ref(ref)
    if not caller.may_see(job.spec.user):
        raise JobNotFound(ref)  # type: ignore[arg-type]
    return job
