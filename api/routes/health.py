"""``/api/health``: each dependency reported separately."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.schemas import HealthResponse
from conductor.exceptions import ServiceUnavailable

router = APIRouter(prefix="/api", tags=["health"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(service: ServiceDep) -> JSONResponse:
    """ok, or 503 naming the component that is down."""
    components = {}
    for name, check in (("database", service.repository.ping), ("queue", service.job_queue.ping)):
        try:
            check()
            components[name] = "ok"
        except ServiceUnavailable as exc:
            components[name] = f"unavailable: {exc}"
    ok = all(value == "ok" for value in components.values())
    body = HealthResponse(status="ok" if ok else "unavailable", components=components)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
