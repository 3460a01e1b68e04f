"""One error shape everywhere: ConductorError and validation errors become ErrorResponse bodies."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorBody, ErrorResponse, FieldError
from conductor.exceptions import (ConductorError, Forbidden, InvalidJobSpec, JobNotFound, NotAuthenticated,
                                  ServiceUnavailable)

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER_S = 5


def error_response(status: int, code: str, message: str, fields: list[FieldError] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
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


async def _conductor_error(_request: Request, exc: ConductorError) -> JSONResponse:
    if isinstance(exc, InvalidJobSpec):
        field = exc.field if exc.field == "script" else f"job.{exc.field}"
        return error_response(422, "invalid_request", f"{field}: {exc.reason}", [FieldError(field=field,
                                                                                          reason=exc.reason)])
    if isinstance(exc, JobNotFound):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, NotAuthenticated):
        return error_response(401, "unauthenticated", str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return error_response(403, "forbidden", str(exc), [FieldError(field=f"job.{exc.field}", reason=exc.reason)])
    if isinstance(exc, ServiceUnavailable):
        return error_response(503, "unavailable", str(exc), headers={"Retry-After": str(RETRY_AFTER_S)})
    log.error("unhandled conductor error: %s", exc)
    return error_response(500, "internal", "internal error")


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
