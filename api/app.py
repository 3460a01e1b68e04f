"""create_app(settings): the FastAPI application.  Nothing is built at import time."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors, metrics, web
from api.routes import cluster, control, health, jobs, status
from api.routes import stream  # noqa: I001 - GET /api/jobs/{id}/output/follow (SSE)
from api.slurm import routes as slurm
from conductor.config import Settings
from conductor.service import JobService


def create_app(settings: Settings, *, service: JobService | None = None, check_ray: bool = False,
               follow: stream.FollowTiming | None = None, dashboard_url: str = "") -> FastAPI:
    """The API for ``settings``; a service is built (and the schema migrated) unless one is given.

    ``check_ray``: this process also runs the scheduler (``conductor up``), so health and
    readiness ask the scheduler actor too.  ``follow``: how output followers poll (the defaults
    unless given).  ``dashboard_url``: the Ray dashboard, which the web page links each job's task to.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None
        app.state.service = service or JobService.from_settings(settings)
        try:
            yield
        finally:
            if owned:
                app.state.service.close()

    app = FastAPI(title="conductor", version="0.1.0", lifespan=lifespan,
                  description="Submit batch jobs (Slurm-style) and follow them. Errors share one shape: "
                              "`{\"error\": {\"status\", \"code\", \"message\", \"fields\"}}`.")
    app.state.settings = settings
    app.state.check_ray = check_ray
    app.state.follow = follow or stream.FollowTiming()
    app.state.followers = stream.Followers()
    if service is not None:
        app.state.service = service
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(stream.router)
    app.include_router(control.router)
    app.include_router(cluster.router)
    app.include_router(health.router)
    app.include_router(status.router)
    app.include_router(slurm.router)
    metrics.install(app)  # GET /metrics, and the API's own error counts
    web.install(app, web.WebOptions(dashboard_url=dashboard_url))  # the pages at / and /web/
    return app
