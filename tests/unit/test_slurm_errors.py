"""The API's one exception table (api/errors.py) and Slurm's error shape of it (api/slurm/ops.slurm_error)."""

from __future__ import annotations

import pytest

from api import errors
from api.slurm import error_numbers as errno
from api.slurm.ops import slurm_error
from conductor.exceptions import (ConfigError, ConductorError, DatabaseUnavailable, Forbidden, InvalidJobSpec,
                                  JobNotFound, NotAuthenticated, QueueUnavailable, SchedulerBusy)


@pytest.mark.parametrize(("exc", "status", "code", "number", "headers"), [
    (InvalidJobSpec("nodes", "must be at least 1"), 422, "invalid_request", errno.ESLURM_REST_FAIL_PARSING, {}),
    (JobNotFound(7), 404, "not_found", errno.ESLURM_INVALID_JOB_ID, {}),
    (NotAuthenticated("a token is required"), 401, "unauthenticated", errno.ESLURM_USER_ID_MISSING,
     {"WWW-Authenticate": "Bearer"}),
    (Forbidden("priority", "admins only"), 403, "forbidden", errno.ESLURM_ACCESS_DENIED, {}),
    (DatabaseUnavailable("gone"), 503, "unavailable", errno.SLURM_COMMUNICATIONS_CONNECTION_ERROR,
     {"Retry-After": str(errors.RETRY_AFTER_S)}),
    (QueueUnavailable(), 503, "unavailable", errno.SLURM_COMMUNICATIONS_CONNECTION_ERROR,
     {"Retry-After": str(errors.RETRY_AFTER_S)}),
    (ConfigError("bad"), 500, "internal", errno.SLURM_ERROR, {}),
    (SchedulerBusy(), 500, "internal", errno.SLURM_ERROR, {}),
])
def test_each_error_answers_from_one_row(exc: ConductorError, status: int, code: str, number: int,
                                         headers: dict) -> None:
    kind = errors.kind_of(exc)
    assert (kind.status, kind.code, kind.slurm_error_number, dict(kind.headers)) == (status, code, number, headers)
    slurm = slurm_error(exc)
    assert (slurm.status, slurm.error_number, slurm.headers or {}) == (status, number, headers)


def test_subclasses_answer_as_their_nearest_listed_class() -> None:
    class Late(JobNotFound):
        pass

    assert errors.kind_of(Late(3)) is errors.ERROR_KINDS[JobNotFound]
    assert errors.kind_of(ConductorError("x")) is errors.INTERNAL


def test_slurm_error_names_the_field_as_the_client_sent_it() -> None:
    exc = InvalidJobSpec("ntasks_per_node", "must be at least 1")
    named = slurm_error(exc, {"ntasks_per_node": "jobs.0.tasks"})
    assert (named.description, named.source) == ("jobs.0.tasks: must be at least 1", "#/jobs/0/tasks")
    unmapped = slurm_error(exc)
    assert (unmapped.description, unmapped.source) == ("job.ntasks_per_node: must be at least 1",
                                                       "#/job/ntasks_per_node")
    assert slurm_error(InvalidJobSpec("signal", "bad")).source == "#/signal"


@pytest.mark.parametrize(("exc", "source", "description"), [
    (JobNotFound(7), "#/job_id", "job 7 does not exist"),
    (NotAuthenticated("a token is required"), "authentication", "a token is required"),
    (Forbidden("priority", "admins only"), "#/job/priority", "priority: admins only"),
    (DatabaseUnavailable("gone"), "database", "database is unavailable: gone"),
    (ConfigError("secret detail"), "conductor", "internal error"),  # nothing internal leaks
])
def test_slurm_error_says_what_the_error_is_about(exc: ConductorError, source: str, description: str) -> None:
    error = slurm_error(exc)
    assert (error.source, error.description) == (source, description)
