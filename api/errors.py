"""One error shape everywhere: ConductorError and validation errors become ErrorResponse bodies.

``ERROR_KINDS`` is the API's one table from conductor's exceptions to what they answer (HTTP
status, conductor's error code, Slurm's error number, headers); the Slurm routes
(``api.slurm``) answer from the same table in Slurm's shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorBody, ErrorResponse, FieldError
from api.slurm import error_numbers as slurm_errno
from conductor.exceptions import (ConductorError, Forbidden, InvalidJobSpec, JobNotFound, NotAuthenticated,
                                  ServiceUnavailable)

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class ErrorKind:
    """How one kind of conductor error answers, in conductor's error shape and in Slurm's."""

    status: int
    #: ``error.code`` of conductor's own error body.
    code: str
    #: ``errors[].error_number`` of Slurm's error body (slurm_errno.h).
    slurm_error_number: int
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


#: What an unlisted error answers: a 500 that says no more than "internal error".
INTERNAL = ErrorKind(500, "internal", slurm_errno.SLURM_ERROR)

#: The API's one exception -> answer table, for the native handler below and the Slurm routes.
#: An error answers as its nearest listed class (DatabaseUnavailable as ServiceUnavailable).
ERROR_KINDS: Mapping[type[ConductorError], ErrorKind] = MappingProxyType({
    InvalidJobSpec: ErrorKind(422, "invalid_request", slurm_errno.ESLURM_REST_FAIL_PARSING),
    JobNotFound: ErrorKind(404, "not_found", slurm_errno.ESLURM_INVALID_JOB_ID),
    NotAuthenticated: ErrorKind(401, "unauthenticated", slurm_errno.ESLURM_USER_ID_MISSING,
                                MappingProxyType({"WWW-Authenticate": "Bearer"})),
    Forbidden: ErrorKind(403, "forbidden", slurm_errno.ESLURM_ACCESS_DENIED),
    ServiceUnavailable: ErrorKind(503, "unavailable", slurm_errno.SLURM_COMMUNICATIONS_CONNECTION_ERROR,
                                  MappingProxyType({"Retry-After": str(RETRY_AFTER_S)})),
})


def kind_of(exc: ConductorError) -> ErrorKind:
    """The table's row for ``exc``: its class's, else its nearest listed base class's, else INTERNAL."""
    for cls in type(exc).__mro__:
        kind = ERROR_KINDS.get(cls)
        if kind is not None:
            return kind
    return INTERNAL


def error_response(status: int, code: str, message: str, fields: list[FieldError] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """conductor's one error shape: ``{"error": {"status", "code", "message", "fields"}}``."""
    body = ErrorResponse(error=ErrorBody(status=status, code=code, message=message, fields=fields or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _dotted(loc: tuple) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [FieldError(field=_dotted(tuple(err.get("loc", ()))), reason=str(err.get("msg", "invalid"))
                         .removeprefix("Value error, ")) for err in exc.errors()]
    message = "; ".join(f"{f.field}: {f.reason}" for f in fields)
    return error_response(422, "invalid_request", message, fields)


def count_unavailable(request: Request, exc: BaseException) -> None:
    """Count a database or queue failure for /metrics (``conductor_*_errors_total{component="api"}``)."""
    counter = getattr(request.app.state, "api_errors", None)
    if counter is not None and isinstance(exc, ServiceUnavailable):
        counter.count(exc)


async def _conductor_error(request: Request, exc: ConductorError) -> JSONResponse:
    count_unavailable(request, exc)
    kind = kind_of(exc)
    if kind is INTERNAL:
        log.error("unhandled conductor error: %s", exc)
        return error_response(kind.status, kind.code, "internal error")
    message, fields = str(exc), []
    if isinstance(exc, InvalidJobSpec):
        name = exc.field if exc.field == "script" else f"job.{exc.field}"
        message, fields = f"{name}: {exc.reason}", [FieldError(field=name, reason=exc.reason)]
    elif isinstance(exc, Forbidden):
        fields = [FieldError(field=f"job.{exc.field}", reason=exc.reason)]
    return error_response(kind.status, kind.code, message, fields, headers=dict(kind.headers) or None)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI could not decode the body (e.g. bytes that are not UTF-8)
        reason = "is not valid UTF-8 JSON"
        return error_response(422, "invalid_request", f"body: {reason}", [FieldError(field="body", reason=reason)])
    return error_response(exc.status_code, "not_found" if exc.status_code == 404 else "http_error", str(exc.detail))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ConductorError, _conductor_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
