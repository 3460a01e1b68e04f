"""What the Slurm endpoints ask of conductor: submit, resolve job ids, list current jobs, cancel, ping.

Only JobService's public methods are used, so a submission goes the way of ``POST /api/jobs/submit``
(``SubmitRequest.to_spec``, ``Caller.check_submit``, ``JobService.submit``/``submit_array``) and
is validated and stored the same way.  conductor's errors come back as SlurmError, answered as
``api.errors``' one exception table says.  No Request here: ``api.slurm.routes`` reads it.
"""

from __future__ import annotations

import logging
import signal as signal_module
import time
from datetime import datetime, timedelta, timezone
from typing import Mapping

from api import errors
from api.schemas import MAX_JOB_ID
from api.slurm.error_numbers import ESLURM_ALREADY_DONE, ESLURM_INVALID_JOB_ID, ESLURM_JOB_PENDING, SLURM_SUCCESS
from api.slurm.schemas import MIN_JOB_AGE_S, SlurmError, Warnings, kill_status, source_path
from api.slurm.translate import Translation
from conductor import arrays, jobs
from conductor.auth import Caller
from conductor.db.listing import JobFilter
from conductor.exceptions import ConductorError, Forbidden, InvalidJobSpec, JobNotFound, NotAuthenticated, \
    ServiceUnavailable
from conductor.service import JobService
from conductor.signals import signal_number

log = logging.getLogger(__name__)



def slurm_error(exc: ConductorError, fields: Mapping[str, str] | None = None) -> SlurmError:
    """conductor's exception as a Slurm error; ``fields`` maps conductor's field names to Slurm paths."""
    kind = errors.kind_of(exc)
    if kind is errors.INTERNAL:
        log.error("unhandled conductor error: %s", exc)
        return SlurmError(kind.status, kind.slurm_error_number, "internal error", "conductor")
    if isinstance(exc, InvalidJobSpec):
        path = (fields or {}).get(exc.field, exc.field if exc.field in ("script", "signal") else f"job.{exc.field}")
        return SlurmError(kind.status, kind.slurm_error_number, f"{path}: {exc.reason}", source_path(path))
    return SlurmError(kind.status, kind.slurm_error_number, str(exc), _source(exc), kind.headers)


def _source(exc: ConductorError) -> str:
    """Slurm's ``source`` of an error: what it is about."""
    if isinstance(exc, JobNotFound):
        return "#/job_id"
    if isinstance(exc, NotAuthenticated):
        return "authentication"
    if isinstance(exc, Forbidden):
        return f"#/job/{exc.field}"
    return exc.component if isinstance(exc, ServiceUnavailable) else "conductor"


def submit(service: JobService, caller: Caller, translation: Translation, *, default_dir: str) -> int:
    """Store the translated job (or array) for ``caller``; its id (an array's: its first task's)."""
    try:
        spec = caller.check_submit(translation.request.to_spec(default_dir=default_dir))
        array = translation.request.job.array
        if array is None:
            return service.submit(spec).id
        return service.submit_array(spec, arrays.parse(array))[0].id
    except ConductorError as exc:
        raise slurm_error(exc, translation.fields) from None


def resolve(service: JobService, text: str) -> list[jobs.Job]:
    """``42`` (an array's id: all its tasks) or ``40_2`` (task 2 of array 40) -> the jobs, in id order."""
    try:
        ref = jobs.parse_job_ref(text)
    except ValueError:
        ref = None
    if ref is None or ref.job_id > MAX_JOB_ID:
        raise SlurmError(422, ESLURM_INVALID_JOB_ID, f"job_id: {text!r} is not a job id such as 42 or 40_2",
                         "#/job_id")
    try:
        return service.jobs_named(ref)
    except JobNotFound:
        raise _unknown(text) from None


def visible(caller: Caller, found: list[jobs.Job], text: str) -> list[jobs.Job]:
    """Only the caller's own jobs (all for an admin); nothing visible reads as unknown."""
    mine = [job for job in found if caller.may_see(job.spec.user)]
    if found and not mine:
        raise _unknown(text)
    return mine


def _unknown(text: str) -> SlurmError:
    return SlurmError(404, ESLURM_INVALID_JOB_ID, f"job {text.strip()} does not exist", "#/job_id")


def current_jobs(service: JobService) -> list[jobs.Job]:
    """What slurmctld lists: pending and running jobs, and jobs that ended within MinJobAge."""
    active = _list_all(service, JobFilter(states=[jobs.JobState.PENDING, jobs.JobState.RUNNING]))
    since = datetime.now(timezone.utc) - timedelta(seconds=MIN_JOB_AGE_S)
    recent = _list_all(service, JobFilter(ended_since=since))
    return sorted({job.id: job for job in active + recent}.values(), key=lambda job: job.id)


def _list_all(service: JobService, job_filter: JobFilter) -> list[jobs.Job]:
    found, cursor = [], None
    while True:
        page, cursor = service.list_jobs(job_filter, cursor=cursor, limit=1000)
        found.extend(page)
        if cursor is None:
            return found


def cancel(service: JobService, targets: list[jobs.Job], signal: str | None, warnings: Warnings) -> list[dict]:
    """scancel the targets (with ``signal``: only signal the running ones); Slurm's status per job.

    A job it did not change gets an error number and a warning: already ended, or (signal
    only) still pending.  KILL, as in slurmrestd, ends the job (conductor: SIGTERM, KillWait, SIGKILL).
    """
    number = signal_number(signal) if signal is not None and signal.strip() else None  # InvalidJobSpec -> 422
    if number == signal_module.SIGKILL:
        number = None
    result = service.cancel([job.id for job in targets], signal_number=number)
    affected = set(result["cancelled"]) | set(result["signalled"])
    status = []
    for job in targets:
        code = SLURM_SUCCESS
        if job.id not in affected:
            pending = number is not None and job.state is jobs.JobState.PENDING
            code = ESLURM_JOB_PENDING if pending else ESLURM_ALREADY_DONE
            what = "is pending: the signal was not sent" if pending \
                else f"had already ended ({job.state.value}): nothing to cancel"
            warnings.add("job_id", f"job {job.display_id} {what}")
        status.append(kill_status(job, code))
    return status


def ping(service: JobService) -> tuple[int, ServiceUnavailable | None]:
    """Ask the database and the queue: (microseconds the asking took, the first failure or None)."""
    started = time.perf_counter()
    failures = [failure for failure in service.ping().values() if failure is not None]
    return int((time.perf_counter() - started) * 1_000_000), (failures[0] if failures else None)
