"""The web page's routes: the pages, signing in and out, and the link to a job's Ray task.

Every page asks who is looking first: with AUTH=none everyone sees everything; with AUTH=token the
session cookie's token decides, and without a valid one the page is the sign-in form (401).  A job
the viewer may not see is a 404, as on the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.deps import SESSION_COOKIE, ServiceDep, session_token, token_caller, visible_job
from api.schemas import MAX_JOB_ID
from api.web import pages, ray_link
from conductor import jobs
from conductor.auth import TRUSTED, Caller
from conductor.exceptions import JobNotFound
from conductor.service import JobService

router = APIRouter(include_in_schema=False)
STATIC = FilePath(__file__).parent / "static"
#: The pages may load only their own files and talk only to their own origin.
_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                                       "form-action 'self'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="Job id.")]


@dataclass(frozen=True)
class WebOptions:
    """What the pages need beyond the settings: kept in ``app.state.web``."""

    dashboard_url: str = ""  #: the Ray dashboard (``conductor up`` knows it); empty: no task links
    refresh_s: float = 2.0  #: seconds between two reads of the queue, the nodes or a job


def install(app: FastAPI, options: WebOptions) -> None:
    """Serve the pages and their static files on ``app``."""
    app.state.web = options
    app.include_router(router)
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")


def _html(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=_HEADERS)


async def _viewer(request: Request) -> Caller | None:
    """Who is looking: TRUSTED with AUTH=none, else the session cookie's user, or None."""
    if not request.app.state.settings.auth_enabled:
        return TRUSTED
    token = session_token(request)
    return await run_in_threadpool(token_caller, request, token) if token else None


def _sign_in(request: Request, *, next_path: str | None = None, error: str = "") -> HTMLResponse:
    """The sign-in form (401); once signed in, the viewer goes to ``next_path`` (default: this page)."""
    if next_path is None:
        next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = _html(pages.login(error=error, next_path=next_path), 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="conductor"'
    return response


def _page(request: Request, viewer: Caller, title: str, content: str, current: str, script: str,
          **data: object) -> HTMLResponse:
    options: WebOptions = request.app.state.web
    data = {"refresh-ms": int(options.refresh_s * 1000), "ray": "yes" if options.dashboard_url else "", **data}
    return _html(pages.layout(title, content, viewer=viewer, auth_enabled=request.app.state.settings.auth_enabled,
                              current=current, data=data, script=script))


@router.get("/", response_class=HTMLResponse)
async def queue_page(request: Request, state: str = "", user: str = "", partition: str = "") -> Response:
    """The queue, filtered by the address's state, user and partition (the page keeps them there)."""
    viewer = await _viewer(request)
    if viewer is None:
        return _sign_in(request)
    state = state.upper() if state.upper() in {value for value, _ in pages.STATE_CHOICES} else ""
    return _page(request, viewer, "Queue", pages.queue(viewer, state=state, user=user, partition=partition),
                 "queue", "queue.js")


@router.get("/web/nodes", response_class=HTMLResponse)
async def nodes_page(request: Request) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _sign_in(request)
    return _page(request, viewer, "Nodes and partitions", pages.nodes(), "nodes", "nodes.js")


async def _job(request: Request, service: JobService, job_id: int) -> tuple[Caller, jobs.Job] | Response:
    """The viewer and the job if they may see it; else the page to answer instead (sign in, or 404 as on
    the API)."""
    viewer = await _viewer(request)
    if viewer is None:
        return _sign_in(request)
    try:
        return viewer, await run_in_threadpool(visible_job, service, viewer, job_id)
    except JobNotFound:
        return _html(pages.message("No such job", f"There is no job {job_id} that you may see."), 404)


@router.get("/web/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: JobId, service: ServiceDep) -> Response:
    """One job: its fields and accounting, and its output followed live."""
    found = await _job(request, service, job_id)
    if isinstance(found, Response):
        return found
    viewer, job = found
    return _page(request, viewer, f"Job {job.display_id}", pages.job(job), "", "job.js", **{"job-id": job.id})


@router.get("/web/jobs/{job_id}/ray")
async def ray_task(request: Request, job_id: JobId, service: ServiceDep) -> Response:
    """A redirect to the job's latest task in the Ray dashboard, or a page that says why there is none."""
    found = await _job(request, service, job_id)
    if isinstance(found, Response):
        return found
    job = found[1]
    dashboard = request.app.state.web.dashboard_url
    if not dashboard:
        return _html(pages.message("No Ray dashboard", "This API was not started by conductor up, so it "
                                   "knows no Ray dashboard."), 404)
    url = await run_in_threadpool(ray_link.task_page, dashboard, job)
    if url is None:
        return _html(pages.message(
            "No Ray task", f"Ray knows no task named {ray_link.task_name(job)}: the job has not started yet, "
            "it ran inside the task of an earlier job of the same shape (a lane: a burst of short jobs shares "
            "a few Ray tasks), or Ray no longer keeps its task (the cluster restarted, or its task table "
            "dropped it).",
            link=dashboard, link_text="Open the Ray dashboard"), 404)
    return RedirectResponse(url, status_code=307)


@router.get("/web/login", response_class=HTMLResponse)
async def login_page(request: Request, next_path: Annotated[str, Query(alias="next")] = "/") -> Response:
    if not request.app.state.settings.auth_enabled:
        return RedirectResponse("/", status_code=303)
    return _html(pages.login(error="", next_path=_local(next_path)))


@router.post("/web/login")
async def login(request: Request) -> Response:
    """Check the form's token; a good one is kept in the session cookie (HttpOnly, SameSite=Strict)."""
    if not request.app.state.settings.auth_enabled:
        return RedirectResponse("/", status_code=303)
    if not _same_origin(request):
        return _html(pages.message("Refused", "A sign-in from another site is refused."), 403)
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    token, next_path = form.get("token", [""])[0].strip(), _local(form.get("next", ["/"])[0])
    caller = await run_in_threadpool(token_caller, request, token) if token else None
    if caller is None:
        return _sign_in(request, next_path=next_path, error="That is not a valid token.")
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


@router.post("/web/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def _local(path: str) -> str:
    """``path`` if it is a path on this site (no scheme, no host), else ``/``: no open redirect."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _same_origin(request: Request) -> bool:
    """Whether the form came from this site (browsers send Origin with every POST they make)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")
