"""``/api/health`` (liveness) and ``/api/ready`` (readiness): database, queue and Ray reported separately."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServiceDep, SettingsDep
from api.errors import RETRY_AFTER_S
from api.schemas import HealthResponse
from conductor.scheduler.handle import status as scheduler_status
from conductor.service import JobService

router = APIRouter(prefix="/api", tags=["health"])


def _storage(service: JobService) -> dict[str, str]:
    return {name: "ok" if failure is None else f"unavailable: {failure}" for name, failure in service.ping().items()}


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(request: Request, service: ServiceDep, settings: SettingsDep) -> JSONResponse:
    """ok when the database and the queue answer (jobs can be accepted); Ray's state is reported beside them
    and counts only when this process is attached to Ray and the scheduler does not answer."""
    components = _storage(service)
    ray_ok, components["ray"] = scheduler_status(settings, check=_checks_ray(request))
    ok = components["database"] == components["queue"] == "ok" and ray_ok is not False
    return _reply(components, ok)


@router.get("/ready", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def ready(request: Request, service: ServiceDep, settings: SettingsDep) -> JSONResponse:
    """ok only when the database, the queue and the scheduler all answer: submitted jobs will run."""
    components = _storage(service)
    ray_ok, components["ray"] = scheduler_status(settings, check=_checks_ray(request))
    return _reply(components, components["database"] == components["queue"] == "ok" and ray_ok is True)


def _checks_ray(request: Request) -> bool:
    return bool(getattr(request.app.state, "check_ray", False))


def _reply(components: dict[str, str], ok: bool) -> JSONResponse:
    body = HealthResponse(status="ok" if ok else "unavailable", components=components)
    headers = None if ok else {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503, headers=headers)
