"""create_app(settings): the FastAPI application.  Nothing is built at import time."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from fastapi import FastAPI

from api import errors
from api.routes import control, health, jobs, slurm
from conductor.config import Settings
from conductor.service import JobService


def create_app(settings: Settings, *, service: JobService | None = None) -> FastAPI:
    """The API for ``settings``; a service is built (and the schema migrated) unless one is given."""

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
    if service is not None:
        app.state.service = service
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(control.router)
    app.include_router(health.router)
    app.include_router(slurm.router)
    return app
