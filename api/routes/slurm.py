"""``/slurm/v0.0.4x/...``: slurmrestd's job endpoints, so that a client written for slurmrestd works unchanged.

Paths, request bodies and responses take the shapes of Slurm's data_parser plugins v0.0.40,
v0.0.41 and v0.0.42 (SchedMD/slurm ``src/plugins/data_parser/v0.0.42/parsers.c``:
JOB_SUBMIT_REQ, JOB_DESC_MSG, JOB_INFO, OPENAPI_JOB_SUBMIT_RESPONSE, PROCESS_EXIT_CODE_VERBOSE,
KILL_JOBS_RESP_JOB, CONTROLLER_PING).  The versions differ here only where Slurm's do: the
v0.0.40/41 submit response also carries ``result``, and v0.0.40's DELETE has no ``status``.

A submission is translated into conductor's own ``SubmitRequest`` and then goes through
exactly the path of ``POST /api/jobs/submit`` (``api.routes.jobs.to_spec``, then
``JobService.submit``/``submit_array``), so it is validated and stored the same way.

Translation decisions (``_translate`` and ``_Builder``):

* Numbers may be plain integers, numeric strings or Slurm's ``{"set", "infinite", "number"}``
  struct; ``set: false`` (or Slurm's NO_VAL) means "not given".
* ``memory_per_node`` and ``memory_per_cpu`` are megabytes (``memory_per_cpu`` x CPUs of the job
  gives conductor's memory per node); both at once, or an infinite value, is refused.
* ``time_limit`` is minutes; infinite or 0 means no limit.
* ``minimum_nodes`` (else the low end of ``nodes``, "2" or "2-4") is the job's node count;
  ``tasks`` are spread over the nodes (``tasks_per_node``, else tasks / nodes rounded up), and
  tasks with tasks_per_node but no node count need tasks / tasks_per_node nodes, as in Slurm.
  ``tres_per_node`` ``gres/gpu:N`` (or ``gres/gpu:TYPE:N``) is GPUs per node; other TRES are refused.
  ``ntasks`` (used by Slurm's older quick-start example) is read as ``tasks``, with a warning.
* ``priority`` ``{"set": true, "number": 0}`` holds the job, as in Slurm (a warning says so).
* ``environment`` is Slurm's list of ``KEY=VALUE`` strings (an object is accepted too).  An entry
  without ``=`` but with ``:`` after a variable name (``PATH:/bin:/usr/bin`` in Slurm's older
  quick-start example) is read as ``KEY=VALUE`` and reported in ``warnings``; anything else
  without ``=`` is refused.
* Every other field, known to Slurm or not, is accepted, ignored and named in ``warnings``
  (fields left empty or false are ignored silently).
* The job's user is the ``X-SLURM-USER-NAME`` header when given, else the service's user.

Slurm's response shapes and error numbers live in ``api.slurm_schemas``.  Errors use Slurm's
shape ``{"errors": [{"description", "error_number", "error", "source"}], "warnings": [], "meta"}``
with 422 for bad input (the description names the field), 404 for an unknown job and 503 when
the database or queue is unavailable.  GET /jobs/ lists what slurmctld would: pending and running
jobs plus jobs that ended within MinJobAge (300 s); GET /job/{id} reads any stored job.
"""

from __future__ import annotations

import json
import logging
import re
import signal as signal_module
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.errors import RETRY_AFTER_S
from api.routes.control import signal_number
from api.routes.jobs import to_spec
from api.schemas import MAX_JOB_ID, SubmitRequest
from api import deps
from api.slurm_schemas import (
    ESLURM_ACCESS_DENIED, ESLURM_USER_ID_MISSING, TOKEN_HEADER,
    ESLURM_ALREADY_DONE, ESLURM_INVALID_JOB_ID, ESLURM_JOB_PENDING, ESLURM_REST_FAIL_PARSING,
    ESLURM_REST_INVALID_JOBS_DESC, ESLURM_REST_UNKNOWN_URL, MIN_JOB_AGE_S, SLURM_COMMUNICATIONS_CONNECTION_ERROR,
    SLURM_ERROR, SLURM_JOB_DESC_FIELDS, STRERROR, USER_HEADER, VERSIONS, WITH_KILL_STATUS, WITH_RESULT, SlurmError,
    Warnings, error_content, job_info, meta, no_val, source_path)
from conductor import arrays, jobs, units
from conductor.config import Settings
from conductor.db.listing import JobFilter
from conductor.auth import Caller
from conductor.exceptions import (ConductorError, Forbidden, InvalidJobSpec, JobNotFound, NotAuthenticated,
                                  ServiceUnavailable)
from conductor.service import JobService

log = logging.getLogger(__name__)

router = APIRouter(tags=["slurmrestd"])


# -- small helpers ---------------------------------------------------------------------------


class _Infinite:
    def __repr__(self) -> str:
        return "INFINITE"


INFINITE = _Infinite()


def _bad(path: str, reason: str) -> SlurmError:
    """422 naming the field: ``path`` is dotted (``job.memory_per_node``)."""
    return SlurmError(422, ESLURM_REST_FAIL_PARSING, f"{path}: {reason}", source_path(path))


def _reply(request: Request, version: str, body: dict[str, Any], warnings: Warnings | None = None) -> JSONResponse:
    content = {**body, "meta": meta(request, version), "errors": [],
               "warnings": warnings.items if warnings else []}
    return JSONResponse(content)


def _error_reply(request: Request, version: str, error: SlurmError, warnings: Warnings | None = None) -> JSONResponse:
    return JSONResponse(error_content(request, version, error, warnings), status_code=error.status,
                        headers=error.headers)


def _from_conductor(exc: ConductorError, fields: dict[str, str] | None = None) -> SlurmError:
    """conductor's exceptions as Slurm errors; ``fields`` maps conductor field names to Slurm paths."""
    if isinstance(exc, InvalidJobSpec):
        path = (fields or {}).get(exc.field, exc.field if exc.field in ("script", "signal") else f"job.{exc.field}")
        return _bad(path, exc.reason)
    if isinstance(exc, JobNotFound):
        return SlurmError(404, ESLURM_INVALID_JOB_ID, str(exc), "#/job_id")
    if isinstance(exc, NotAuthenticated):
        return SlurmError(401, ESLURM_USER_ID_MISSING, str(exc), "authentication",
                          headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        return SlurmError(403, ESLURM_ACCESS_DENIED, str(exc), f"#/job/{exc.field}")
    if isinstance(exc, ServiceUnavailable):
        return SlurmError(503, SLURM_COMMUNICATIONS_CONNECTION_ERROR, str(exc), exc.component,
                          headers={"Retry-After": str(RETRY_AFTER_S)})
    log.error("unhandled conductor error: %s", exc)
    return SlurmError(500, SLURM_ERROR, "internal error", "conductor")


async def _run(request: Request, version: str, work: Callable[[], JSONResponse]) -> JSONResponse:
    """Run the (blocking) work in the thread pool; every failure answers in Slurm's shape."""
    try:
        return await run_in_threadpool(work)
    except SlurmError as exc:
        return _error_reply(request, version, exc)
    except ConductorError as exc:
        return _error_reply(request, version, _from_conductor(exc))
    except Exception:  # noqa: BLE001 - a Slurm client must get Slurm's shape, whatever happened
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _error_reply(request, version, SlurmError(500, SLURM_ERROR, "internal error", "conductor"))


def _service(request: Request) -> JobService:
    return request.app.state.service


def _caller_of(request: Request) -> Caller:
    """The authenticated caller (Bearer, or Slurm's X-SLURM-USER-NAME / X-SLURM-USER-TOKEN pair)."""
    headers = request.headers
    return deps._caller(request, authorization=headers.get("authorization"),
                        x_slurm_user_name=headers.get(USER_HEADER), x_slurm_user_token=headers.get(TOKEN_HEADER))


def _visible(caller: Caller, found: list[jobs.Job], job_text: str) -> list[jobs.Job]:
    """Only the caller's own jobs (all for an admin); nothing visible reads as unknown."""
    mine = [job for job in found if caller.may_see(job.spec.user)]
    if found and not mine:
        raise SlurmError(404, ESLURM_INVALID_JOB_ID, f"job {job_text.strip()} does not exist", "#/job_id")
    return mine


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# -- numbers in Slurm's shapes ---------------------------------------------------------------


_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")


def _number(value: Any, path: str, *, bits: int = 32, signed: bool = False,
            allow_text: bool = False) -> int | None | _Infinite | str:
    """A Slurm number: int, numeric string or ``{set, infinite, number}``.

    Returns None when unset (also Slurm's NO_VAL), INFINITE when infinite (also Slurm's INFINITE
    value), else the integer.  With ``allow_text`` other strings come back unchanged (for "8G"
    or "1:00:00", which conductor's own parsers read).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"set", "infinite", "number"})
        if unknown:
            raise _bad(path, f"unknown key {unknown[0]!r}: a number struct has set, infinite and number")
        for key in ("set", "infinite"):
            if key in value and not isinstance(value[key], bool):
                raise _bad(path, f"{key} must be true or false")
        if value.get("infinite"):
            return INFINITE
        if value.get("set") is False or "number" not in value:
            return None
        return _number(value["number"], path, bits=bits, signed=signed, allow_text=allow_text)
    if isinstance(value, bool):
        raise _bad(path, "expected a number, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise _bad(path, f"{value!r} is not a whole number")
        value = int(value)
    if isinstance(value, str):
        if not _INTEGER.match(value):
            if allow_text and value.strip():
                return value
            raise _bad(path, f"{value!r} is not a whole number")
        value = int(value)
    if not isinstance(value, int):
        raise _bad(path, f"expected a number or a {{set, infinite, number}} object, not {type(value).__name__}")
    if not signed:
        if value < 0:
            raise _bad(path, "must not be negative")
        if value in (2**bits - 2, 2**64 - 2):  # NO_VAL
            return None
        if value in (2**bits - 1, 2**64 - 1):  # INFINITE
            return INFINITE
    return value


def _finite(value: Any, path: str, **kwargs: Any) -> int | str | None:
    number = _number(value, path, **kwargs)
    if number is INFINITE:
        raise _bad(path, "infinite is not supported here; give a number")
    return number  # type: ignore[return-value]


def _boolean(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise _bad(path, f"{value!r} is not true or false")


def _text(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _bad(path, f"expected a string, not {type(value).__name__}")


def _empty(value: Any) -> bool:
    """Values a client sends for "not set": nothing to warn about."""
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True
    return isinstance(value, dict) and value.get("set") is False and not value.get("infinite")


# -- submit ----------------------------------------------------------------------------------


@dataclass
class _Translated:
    request: SubmitRequest
    #: conductor field name -> Slurm path, to name the field the client sent in errors.
    fields: dict[str, str]


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NODES = re.compile(r"^\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?(?::[0-9]+)?\s*$")
#: conductor's field -> the Slurm field that InvalidJobSpec from the service stands for by default.
_DEFAULT_SOURCES = {"ntasks_per_node": "tasks_per_node", "memory_per_node": "memory_per_node",
                    "time_limit": "time_limit", "current_working_directory": "current_working_directory",
                    "dependency": "dependency", "cpus_per_task": "cpus_per_task"}


def _job_object(body: Any) -> tuple[dict[str, Any], str]:
    """The job_desc_msg of a job_submit_req and its path (``job``, or ``jobs.0`` for one component)."""
    if not isinstance(body, dict):
        raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC, "body: expected a JSON object with a job", "#/")
    job, prefix = body.get("job"), "job"
    if job is not None and body.get("jobs"):
        raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC, "jobs: give job or jobs, not both", "#/jobs")
    if job is None and isinstance(body.get("jobs"), list):
        if len(body["jobs"]) != 1:
            raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC,
                             "jobs: heterogeneous jobs (more than one component) are not supported by conductor",
                             "#/jobs")
        job, prefix = body["jobs"][0], "jobs.0"
    if not isinstance(job, dict):
        raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC,
                         f"{prefix}: {'is required' if job is None else 'must be an object'}", source_path(prefix))
    return job, prefix


class _Builder:
    """Reads one job_desc_msg into the ``job`` object of conductor's SubmitRequest."""

    def __init__(self, job: dict[str, Any], prefix: str, version: str, warnings: Warnings) -> None:
        self.job, self.prefix, self.version, self.warnings = job, prefix, version, warnings
        self.native: dict[str, Any] = {}
        self.fields: dict[str, str] = {}
        self.handled: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def take(self, name: str) -> Any:
        self.handled.add(name)
        return self.job.get(name)

    def put(self, native_name: str, value: Any, slurm_name: str) -> None:
        if value is not None:
            self.native[native_name] = value
            self.fields[native_name] = self.path(slurm_name)

    def texts(self) -> None:
        for name in ("name", "account", "partition"):
            value = _text(self.take(name), self.path(name))
            if value:  # "" means unset, as in Slurm
                self.put(name, value, name)
        for name in ("current_working_directory", "standard_output", "standard_error", "dependency", "array",
                     "script"):
            self.put(name, _text(self.take(name), self.path(name)), name)
        stdin = _text(self.take("standard_input"), self.path("standard_input"))
        if stdin not in (None, "", "/dev/null"):
            self.warnings.add(self.path("standard_input"), f"{self.path('standard_input')}: conductor jobs read "
                                                           f"/dev/null; {stdin!r} ignored")
        argv = self.take("argv")
        if argv is not None and (not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv)):
            raise _bad(self.path("argv"), "expected a list of strings")
        self.put("argv", argv, "argv")
        environment = self.take("environment")
        if environment is not None:
            self.put("environment", self.environment(environment), "environment")

    def environment(self, value: Any) -> Any:
        """Slurm's ``["KEY=VALUE", ...]``; ``KEY:VALUE`` entries (no ``=``) are read as KEY=VALUE."""
        if not isinstance(value, list):
            return value  # an object (v0.0.38 style) or garbage: JobDescription decides
        entries = []
        for index, item in enumerate(value):
            if isinstance(item, str) and "=" not in item:
                key, colon, rest = item.partition(":")
                if colon and _ENV_NAME.match(key):
                    where = self.path(f"environment.{index}")
                    self.warnings.add(where, f"{self.path('environment')}[{index}]: {item!r} has no '='; "
                                             f"read as {key}={rest}")
                    item = f"{key}={rest}"
            entries.append(item)
        return entries

    def tasks(self) -> None:
        """CPUs, tasks, nodes (minimum_nodes, or the low end of nodes "N-M") and GPUs (tres_per_node)."""
        self.put("cpus_per_task", _finite(self.take("cpus_per_task"), self.path("cpus_per_task"), bits=16),
                 "cpus_per_task")
        tasks, tasks_name = _finite(self.take("tasks"), self.path("tasks")), "tasks"
        legacy = self.take("ntasks")
        if legacy is not None:
            if tasks is None:
                tasks, tasks_name = _finite(legacy, self.path("ntasks")), "ntasks"
            self.warnings.add(self.path("ntasks"), f"{self.path('ntasks')} is not a job_desc_msg field of "
                                                   f"{self.version}; "
                                                   f"{'read as tasks' if tasks_name == 'ntasks' else 'tasks used'}")
        per_node = _finite(self.take("tasks_per_node"), self.path("tasks_per_node"), bits=16)
        nodes, nodes_name = _node_count(self.take("nodes"), self.take("minimum_nodes"), self.path)
        self.handled.add("maximum_nodes")  # conductor allocates the minimum
        if nodes is None and tasks is not None and per_node is not None:
            nodes = -(-tasks // per_node)  # Slurm spreads tasks over as many nodes as they need
            nodes_name = tasks_name
        if tasks is not None and per_node is not None and tasks != per_node * (nodes or 1):
            raise _bad(self.path(tasks_name), f"{tasks} tasks is not tasks_per_node {per_node} x {nodes or 1} nodes")
        if per_node is None and tasks is not None:
            per_node = -(-tasks // (nodes or 1))
            self.put("ntasks_per_node", per_node, tasks_name)
        else:
            self.put("ntasks_per_node", per_node, "tasks_per_node")
        self.put("nodes", nodes, nodes_name)
        self.put("gpus_per_node", _gpus(self.take("tres_per_node"), self.path("tres_per_node")), "tres_per_node")

    def memory(self) -> None:
        """Megabytes per node, or per CPU (times the job's CPUs)."""
        per_node = _finite(self.take("memory_per_node"), self.path("memory_per_node"), bits=64, allow_text=True)
        per_cpu = _finite(self.take("memory_per_cpu"), self.path("memory_per_cpu"), bits=64, allow_text=True)
        if per_node is not None and per_cpu is not None:
            raise _bad(self.path("memory_per_cpu"), "give memory_per_node or memory_per_cpu, not both")
        if per_cpu is not None:
            per_node = _memory_per_cpu(per_cpu, self.native.get("cpus_per_task"),
                                       self.native.get("ntasks_per_node"), self.path("memory_per_cpu"))
        self.put("memory_per_node", per_node, "memory_per_cpu" if per_cpu is not None else "memory_per_node")

    def scheduling(self) -> None:
        """Time limit (minutes; infinite or 0 = none), priority (0 = held), hold, nice, requeue, begin."""
        limit = _number(self.take("time_limit"), self.path("time_limit"), allow_text=True)
        self.put("time_limit", 0 if limit is INFINITE else limit, "time_limit")
        priority = _number(self.take("priority"), self.path("priority"))
        hold = _boolean(self.take("hold"), self.path("hold"))
        if priority is INFINITE:
            self.warnings.add(self.path("priority"), f"{self.path('priority')}: an infinite priority is not "
                                                     "supported; ignored")
        elif priority == 0:
            hold = True
            self.warnings.add(self.path("priority"), f"{self.path('priority')}: 0 holds the job, as in Slurm: it "
                                                     "stays PENDING (JobHeldUser) until released")
        else:
            self.put("priority", priority, "priority")
        if hold:
            self.put("hold", True, "hold" if self.job.get("hold") else "priority")
        self.put("nice", _finite(self.take("nice"), self.path("nice"), signed=True), "nice")
        self.put("requeue", _boolean(self.take("requeue"), self.path("requeue")), "requeue")
        self.put("begin_time", _begin_time(self.take("begin_time"), self.path("begin_time")), "begin_time")
        self.put("kill_on_invalid_dependency", _boolean(self.take("kill_on_invalid_dependency"),
                                                        self.path("kill_on_invalid_dependency")),
                 "kill_on_invalid_dependency")

    def warn_about_the_rest(self) -> None:
        for name, value in self.job.items():
            if name in self.handled or _empty(value):
                continue
            kind = "not implemented by conductor" if name in SLURM_JOB_DESC_FIELDS \
                else "not a field of Slurm's job_desc_msg"
            self.warnings.add(self.path(name), f"Field {self.path(name)} is {kind}; ignored")


def _translate(body: Any, version: str, user: str, warnings: Warnings) -> _Translated:
    """A job_submit_req body -> conductor's SubmitRequest (validated), warnings collected."""
    job, prefix = _job_object(body)
    for key in body:
        if key not in ("script", "job", "jobs"):
            warnings.add(key, f"Field {key} is not a field of Slurm's job_submit_req; ignored")
    builder = _Builder(job, prefix, version, warnings)
    builder.texts()
    builder.tasks()
    builder.memory()
    builder.scheduling()
    builder.warn_about_the_rest()
    if user:
        builder.native["user"] = user
    top_script = body.get("script")
    if top_script is not None and not isinstance(top_script, str):
        raise _bad("script", "expected a string")
    fields = builder.fields
    try:
        request = SubmitRequest.model_validate({"job": builder.native, "script": top_script})
    except ValidationError as exc:
        raise _validation_error(exc, fields, builder.path) from None
    fields["script"] = "script" if top_script is not None else builder.path("script")
    for native_name, slurm_name in _DEFAULT_SOURCES.items():
        fields.setdefault(native_name, builder.path(slurm_name))
    return _Translated(request, fields)


def _validation_error(exc: ValidationError, fields: dict[str, str], path: Callable[[str], str]) -> SlurmError:
    """The first pydantic error, naming the field as the client sent it."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    name = loc[1] if len(loc) > 1 and loc[0] == "job" else (loc[0] if loc else "job")
    where = fields.get(name, "script" if name == "script" else path(name))
    where += "".join(f".{part}" for part in loc[2:] if part.isdigit())  # list indexes, not union tags
    return _bad(where, str(first.get("msg", "invalid")).removeprefix("Value error, "))


def _node_count(nodes: Any, minimum: Any, path: Callable[[str], str]) -> tuple[int | None, str]:
    """How many nodes the job gets: minimum_nodes, else the low end of nodes ("2" or "2-4")."""
    least = _finite(minimum, path("minimum_nodes"))
    if least is not None and least >= 1:
        return least, "minimum_nodes"
    if nodes is None or nodes == "":
        return None, "nodes"
    text = str(nodes) if isinstance(nodes, int) and not isinstance(nodes, bool) else nodes
    match = _NODES.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) < 1:
        raise _bad(path("nodes"), f"{nodes!r} is not a node count such as 1 or 1-4")
    return int(match.group(1)), "nodes"


def _gpus(tres: Any, where: str) -> int | None:
    """tres_per_node "gres/gpu:2" (or "gres:gpu:2", "gres/gpu:a100:2") -> 2; other TRES are refused."""
    if tres is None or tres == "":
        return None
    if not isinstance(tres, str):
        raise _bad(where, "expected a string such as gres/gpu:2")
    count = None
    for item in tres.split(","):
        parts = item.replace("gres/", "gres:", 1).split(":")
        if parts[:2] != ["gres", "gpu"] or len(parts) not in (3, 4) or not parts[-1].isdigit():
            raise _bad(where, f"{item!r}: only gres/gpu:N (or gres/gpu:TYPE:N) is supported")
        count = int(parts[-1])
    return count


def _memory_per_cpu(value: int | str, cpus_per_task: Any, ntasks: Any, where: str) -> int:
    try:
        megabytes = units.parse_memory_mb(value)
    except ValueError as exc:
        raise _bad(where, str(exc)) from None
    cpus = (cpus_per_task if isinstance(cpus_per_task, int) else 1) * (ntasks if isinstance(ntasks, int) else 1)
    return megabytes * cpus


def _begin_time(value: Any, where: str) -> datetime | int | None:
    if isinstance(value, str) and not _INTEGER.match(value):
        try:  # sbatch's --begin forms (now+1hour, 16:00, 2026-11-28T16:00:00)
            return units.parse_begin_time(value, datetime.now(timezone.utc).astimezone())
        except ValueError as exc:
            raise _bad(where, str(exc)) from None
    return _finite(value, where, bits=64)  # type: ignore[return-value]


def _submit(request: Request, version: str, body: Any) -> JSONResponse:
    caller = _caller_of(request)
    warnings = Warnings()
    translated = _translate(body, version, request.headers.get(USER_HEADER, "").strip(), warnings)
    service, settings = _service(request), _settings(request)
    try:
        spec = caller.check_submit(to_spec(translated.request, default_dir=str(settings.state_dir)))
        array = translated.request.job.array
        if array is None:
            job_id = service.submit(spec).id
        else:
            job_id = service.submit_array(spec, arrays.parse(array))[0].id
    except ConductorError as exc:
        raise _from_conductor(exc, translated.fields) from None
    content: dict[str, Any] = {"job_id": job_id, "step_id": "batch", "job_submit_user_msg": ""}
    if version in WITH_RESULT:
        content["result"] = {"job_id": job_id, "step_id": "batch", "error_code": 0, "error": STRERROR[0],
                             "job_submit_user_msg": ""}
    return _reply(request, version, content, warnings)


# -- reading jobs ----------------------------------------------------------------------------


_JOB_ID = re.compile(r"^\s*([0-9]+)(?:_([0-9]+))?\s*$")


def _resolve(service: JobService, text: str) -> list[jobs.Job]:
    """``42`` (an array's id: all its tasks) or ``40_2`` (task 2 of array 40) -> the jobs."""
    match = _JOB_ID.match(text)
    if not match or not 1 <= int(match.group(1)) <= MAX_JOB_ID:
        raise SlurmError(422, ESLURM_INVALID_JOB_ID, f"job_id: {text!r} is not a job id such as 42 or 40_2",
                         "#/job_id")
    job_id = int(match.group(1))
    first = service.get(job_id)  # JobNotFound -> 404
    found = [first]
    if first.spec.array_job_id == job_id:
        found = service.repository.get_many(service.repository.expand_ids([job_id]))
    if match.group(2) is not None:
        task = int(match.group(2))
        found = [job for job in found if job.spec.array_job_id == job_id and job.spec.array_task_id == task]
        if not found:
            raise SlurmError(404, ESLURM_INVALID_JOB_ID, f"job {text.strip()} does not exist", "#/job_id")
    return sorted(found, key=lambda job: job.id)


def _jobs_reply(request: Request, version: str, found: list[jobs.Job]) -> JSONResponse:
    now = no_val(int(time.time()))
    waiting_on = _service(request).dependency_states(found)
    return _reply(request, version, {"jobs": [job_info(job, waiting_on.get(job.id)) for job in found],
                                     "last_backfill": now, "last_update": now})


def _list_all(service: JobService, job_filter: JobFilter) -> list[jobs.Job]:
    found, cursor = [], None
    while True:
        page, cursor = service.list_jobs(job_filter, cursor=cursor, limit=1000)
        found.extend(page)
        if cursor is None:
            return found


def _current_jobs(service: JobService) -> list[jobs.Job]:
    """What slurmctld lists: pending and running jobs, and jobs that ended within MinJobAge."""
    active = _list_all(service, JobFilter(states=[jobs.JobState.PENDING, jobs.JobState.RUNNING]))
    since = datetime.now(timezone.utc) - timedelta(seconds=MIN_JOB_AGE_S)
    recent = _list_all(service, JobFilter(ended_since=since))
    return sorted({job.id: job for job in active + recent}.values(), key=lambda job: job.id)


# -- cancel ----------------------------------------------------------------------------------


def _delete(request: Request, version: str, job_id: str) -> JSONResponse:
    service = _service(request)
    targets = _visible(_caller_of(request), _resolve(service, job_id), job_id)
    warnings = Warnings()
    text = request.query_params.get("signal")
    number = None
    if text is not None and text.strip():
        number = signal_number(text)  # InvalidJobSpec("signal") -> 422
        if number == signal_module.SIGKILL:
            number = None  # slurmrestd's default: end the job (conductor: SIGTERM, KillWait, SIGKILL)
    if request.query_params.get("flags"):
        warnings.add("flags", "flags are not implemented by conductor; ignored")
    result = service.cancel([job.id for job in targets], signal_number=number)
    affected = set(result["cancelled"]) | set(result["signalled"])
    status = []
    for job in targets:
        code = 0
        if job.id not in affected:
            code = ESLURM_JOB_PENDING if number is not None and job.state is jobs.JobState.PENDING \
                else ESLURM_ALREADY_DONE
            what = "is pending: the signal was not sent" if code == ESLURM_JOB_PENDING \
                else f"had already ended ({job.state.value}): nothing to cancel"
            warnings.add("job_id", f"job {job.display_id} {what}")
        status.append({"error": {"string": STRERROR[code], "code": code, "message": ""},
                       "step_id": job.display_id, "job_id": no_val(job.id), "federation": {"sibling": ""}})
    content = {"status": status} if version in WITH_KILL_STATUS else {}
    return _reply(request, version, content, warnings)


# -- ping ------------------------------------------------------------------------------------


def _ping(request: Request, version: str) -> JSONResponse:
    service, settings = _service(request), _settings(request)
    started = time.perf_counter()
    failure = None
    for check in (service.repository.ping, service.job_queue.ping):
        try:
            check()
        except ServiceUnavailable as exc:
            failure = exc
            break
    latency_us = int((time.perf_counter() - started) * 1_000_000)
    up = failure is None
    pings = [{"hostname": settings.node_name, "pinged": "UP" if up else "DOWN", "responding": up,
              "latency": latency_us, "mode": "primary", "primary": True}]
    if up:
        return _reply(request, version, {"pings": pings})
    error = _from_conductor(failure)
    return JSONResponse({"pings": pings, **error_content(request, version, error)}, status_code=error.status,
                        headers=error.headers)


# -- routes ----------------------------------------------------------------------------------


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise SlurmError(422, ESLURM_REST_INVALID_JOBS_DESC, "body: is empty; expected a JSON object with a job", "#/")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SlurmError(422, ESLURM_REST_FAIL_PARSING, f"body: is not valid UTF-8 JSON ({exc})", "#/") from None


_SUBMIT_EXAMPLE = {
    "job": {"name": "test", "tasks": 1, "cpus_per_task": 2, "memory_per_node": {"set": True, "number": 1024},
            "time_limit": {"set": True, "number": 30}, "current_working_directory": "/tmp",
            "environment": ["PATH=/bin:/usr/bin/:/usr/local/bin/"], "script": "#!/bin/bash\necho it works"},
}
_SLURM_ERROR_DOC = {"description": "Slurm's error shape: {errors: [{description, error_number, error, source}], "
                                   "warnings, meta}"}
_ERRORS_DOC = {404: _SLURM_ERROR_DOC, 422: _SLURM_ERROR_DOC, 503: _SLURM_ERROR_DOC}


def _add_version(version: str) -> None:
    prefix = f"/slurm/{version}"

    async def submit(request: Request) -> JSONResponse:
        try:
            body = await _read_json(request)
        except SlurmError as exc:
            return _error_reply(request, version, exc)
        return await _run(request, version, lambda: _submit(request, version, body))

    async def list_jobs(request: Request) -> JSONResponse:
        return await _run(request, version, lambda: _jobs_reply(request, version, [
            job for job in _current_jobs(_service(request)) if _caller_of(request).may_see(job.spec.user)]))

    async def get_job(request: Request, job_id: str) -> JSONResponse:
        return await _run(request, version, lambda: _jobs_reply(
            request, version, _visible(_caller_of(request), _resolve(_service(request), job_id), job_id)))

    async def delete_job(request: Request, job_id: str) -> JSONResponse:
        return await _run(request, version, lambda: _delete(request, version, job_id))

    async def ping(request: Request) -> JSONResponse:
        return await _run(request, version, lambda: _ping(request, version))

    router.add_api_route(
        f"{prefix}/job/submit", submit, methods=["POST"], summary=f"Submit a batch job (slurmrestd {version})",
        responses=_ERRORS_DOC, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}, "example": _SUBMIT_EXAMPLE}}}},
        description="Slurm's job_submit_req: `{\"job\": job_desc_msg, \"script\": deprecated}`. Fields conductor "
                    "does not implement are accepted and named in `warnings`.")
    for path, include in ((f"{prefix}/jobs/", True), (f"{prefix}/jobs", False)):
        router.add_api_route(path, list_jobs, methods=["GET"], include_in_schema=include, responses=_ERRORS_DOC,
                             summary=f"List current jobs (slurmrestd {version})",
                             description="Pending and running jobs, and jobs that ended in the last "
                                         f"{MIN_JOB_AGE_S} s (Slurm's MinJobAge).")
    router.add_api_route(f"{prefix}/job/{{job_id}}", get_job, methods=["GET"], responses=_ERRORS_DOC,
                         summary=f"Get a job (slurmrestd {version})",
                         description="`42`, or `40_2` for task 2 of array 40; an array's id lists all its tasks.")
    router.add_api_route(f"{prefix}/job/{{job_id}}", delete_job, methods=["DELETE"], responses=_ERRORS_DOC,
                         summary=f"Cancel or signal a job (slurmrestd {version})",
                         description="Without `signal` (or with KILL) the job is cancelled; with another signal "
                                     "a running job only receives it.")
    for path, include in ((f"{prefix}/ping/", True), (f"{prefix}/ping", False)):
        router.add_api_route(path, ping, methods=["GET"], include_in_schema=include, responses=_ERRORS_DOC,
                             summary=f"Ping (slurmrestd {version})")


for _version in VERSIONS:
    _add_version(_version)


@router.api_route("/slurm/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
async def unknown_endpoint(request: Request, rest: str) -> JSONResponse:
    """Anything else under /slurm/: Slurm's 404, in Slurm's shape."""
    version = rest.split("/", 1)[0] if rest.split("/", 1)[0] in VERSIONS else VERSIONS[-1]
    return _error_reply(request, version, SlurmError(
        404, ESLURM_REST_UNKNOWN_URL, f"{request.method} {request.url.path}: conductor serves "
                                      f"job/submit, jobs/, job/{{job_id}} and ping/ under /slurm/{'|'.join(VERSIONS)}",
        request.url.path))
