"""Slurm's job_submit_req -> conductor's SubmitRequest.  Pure: no Request, no service, no I/O.

The body takes the shape of Slurm's data_parser plugins v0.0.40 to v0.0.42 (SchedMD/slurm
``src/plugins/data_parser/v0.0.42/parsers.c``: JOB_SUBMIT_REQ, JOB_DESC_MSG).  ``translate``
returns the request (validated as ``POST /api/jobs/submit`` validates its body), the warnings
for the client, and the map from conductor's field names to the Slurm paths the client sent,
so that a refusal by the service later still names the field as the client wrote it.  A bad
body is a SlurmError (422) naming the field.

Translation decisions:

* Numbers may be plain integers, numeric strings or Slurm's ``{"set", "infinite", "number"}``
  struct; ``set: false`` (or Slurm's NO_VAL) means "not given" (``api.slurm.values``).
* ``memory_per_node`` and ``memory_per_cpu`` are megabytes (``memory_per_cpu`` x CPUs of the job
  on a node gives conductor's memory per node); both at once, or an infinite value, is refused.
* ``time_limit`` is minutes; infinite or 0 means no limit.
* ``minimum_nodes`` (else the low end of ``nodes``, "2" or "2-4") is the job's node count;
  ``tasks`` are spread over the nodes (``tasks_per_node``, else tasks / nodes rounded up), and
  tasks with tasks_per_node but no node count need tasks / tasks_per_node nodes (rounded up), as
  in Slurm (``conductor.slurm_options``, the arithmetic sbatch's options use too).
  ``tres_per_node`` ``gres/gpu:N`` (or ``gres/gpu:TYPE:N``) is GPUs per node; other TRES are refused.
  ``ntasks`` (used by Slurm's older quick-start example) is read as ``tasks``, with a warning.
* ``priority`` ``{"set": true, "number": 0}`` holds the job, as in Slurm (a warning says so).
* ``environment`` is Slurm's list of ``KEY=VALUE`` strings (an object is accepted too).  An entry
  without ``=`` but with ``:`` after a variable name (``PATH:/bin:/usr/bin`` in Slurm's older
  quick-start example) is read as ``KEY=VALUE`` and reported in ``warnings``; anything else
  without ``=`` is refused.
* ``begin_time`` is a Unix time, or one of sbatch's ``--begin`` forms (``now+1hour``, ``16:00``).
* Every other field, known to Slurm or not, is accepted, ignored and named in ``warnings``
  (fields left empty or false are ignored silently).
* ``user`` (the caller's X-SLURM-USER-NAME, when given) is the job's user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from pydantic import ValidationError

from api.schemas import SubmitRequest
from api.slurm import values
from api.slurm.error_numbers import ESLURM_REST_INVALID_JOBS_DESC
from api.slurm.schemas import SLURM_JOB_DESC_FIELDS, SlurmError, Warnings, source_path
from conductor import slurm_options, units


@dataclass(frozen=True)
class Translation:
    """A job_submit_req read as conductor's request."""

    request: SubmitRequest
    warnings: Warnings
    #: conductor field name -> Slurm path, to name the field the client sent in errors.
    fields: dict[str, str]


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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

    def __init__(self, job: dict[str, Any], prefix: str, version: str, warnings: Warnings, now: datetime) -> None:
        self.job, self.prefix, self.version, self.warnings, self.now = job, prefix, version, warnings, now
        self.native: dict[str, Any] = {}
        self.fields: dict[str, str] = {}
        self.handled: set[str] = set()

    def path(self, name: str) -> str:
        """The Slurm path of a job_desc_msg field (``job.tasks``, ``jobs.0.tasks``)."""
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
            value = values.text(self.take(name), self.path(name))
            if value:  # "" means unset, as in Slurm
                self.put(name, value, name)
        for name in ("current_working_directory", "standard_output", "standard_error", "dependency", "array",
                     "script"):
            self.put(name, values.text(self.take(name), self.path(name)), name)
        stdin = values.text(self.take("standard_input"), self.path("standard_input"))
        if stdin not in (None, "", "/dev/null"):
            self.warnings.add(self.path("standard_input"), f"{self.path('standard_input')}: conductor jobs read "
                                                           f"/dev/null; {stdin!r} ignored")
        argv = self.take("argv")
        if argv is not None and (not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv)):
            raise values.bad(self.path("argv"), "expected a list of strings")
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
        self.put("cpus_per_task", values.finite(self.take("cpus_per_task"), self.path("cpus_per_task"), bits=16),
                 "cpus_per_task")
        tasks, tasks_name = self.task_count()
        per_node = values.finite(self.take("tasks_per_node"), self.path("tasks_per_node"), bits=16)
        nodes, nodes_name = _node_count(self.take("nodes"), self.take("minimum_nodes"), self.path)
        self.handled.add("maximum_nodes")  # conductor allocates the minimum
        try:
            layout = slurm_options.layout(tasks, per_node, nodes)
        except slurm_options.TaskCountMismatch:
            raise values.bad(self.path(tasks_name), f"{tasks} tasks is not tasks_per_node {per_node} x {nodes} "
                                                    "nodes") from None
        if nodes is None and tasks is not None and per_node is not None:
            self.put("nodes", layout.nodes, tasks_name)  # Slurm spreads tasks over as many nodes as they need
        else:
            self.put("nodes", nodes, nodes_name)
        if per_node is None and tasks is not None:
            self.put("ntasks_per_node", layout.tasks_per_node, tasks_name)
        else:
            self.put("ntasks_per_node", per_node, "tasks_per_node")
        self.put("gpus_per_node", _gpus(self.take("tres_per_node"), self.path("tres_per_node")), "tres_per_node")

    def task_count(self) -> tuple[int | None, str]:
        """``tasks``, else the legacy ``ntasks`` (with a warning either way it is given), and its name."""
        tasks, tasks_name = values.finite(self.take("tasks"), self.path("tasks")), "tasks"
        legacy = self.take("ntasks")
        if legacy is not None:
            if tasks is None:
                tasks, tasks_name = values.finite(legacy, self.path("ntasks")), "ntasks"
            self.warnings.add(self.path("ntasks"), f"{self.path('ntasks')} is not a job_desc_msg field of "
                                                   f"{self.version}; "
                                                   f"{'read as tasks' if tasks_name == 'ntasks' else 'tasks used'}")
        return tasks, tasks_name  # type: ignore[return-value]

    def memory(self) -> None:
        """Megabytes per node, or per CPU (times the job's CPUs)."""
        per_node = values.finite(self.take("memory_per_node"), self.path("memory_per_node"), bits=64, allow_text=True)
        per_cpu = values.finite(self.take("memory_per_cpu"), self.path("memory_per_cpu"), bits=64, allow_text=True)
        if per_node is not None and per_cpu is not None:
            raise values.bad(self.path("memory_per_cpu"), "give memory_per_node or memory_per_cpu, not both")
        if per_cpu is not None:
            per_node = _memory_per_cpu(per_cpu, self.native.get("cpus_per_task"),
                                       self.native.get("ntasks_per_node"), self.path("memory_per_cpu"))
        self.put("memory_per_node", per_node, "memory_per_cpu" if per_cpu is not None else "memory_per_node")

    def scheduling(self) -> None:
        """Time limit (minutes; infinite or 0 = none), priority (0 = held), hold, nice, requeue, begin,
        kill_on_invalid_dependency."""
        limit = values.number(self.take("time_limit"), self.path("time_limit"), allow_text=True)
        self.put("time_limit", 0 if limit is values.INFINITE else limit, "time_limit")
        priority = values.number(self.take("priority"), self.path("priority"))
        hold = values.boolean(self.take("hold"), self.path("hold"))
        if priority is values.INFINITE:
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
        self.put("nice", values.finite(self.take("nice"), self.path("nice"), signed=True), "nice")
        self.put("requeue", values.boolean(self.take("requeue"), self.path("requeue")), "requeue")
        self.put("begin_time", _begin_time(self.take("begin_time"), self.path("begin_time"), self.now),
                 "begin_time")
        self.put("kill_on_invalid_dependency", values.boolean(self.take("kill_on_invalid_dependency"),
                                                              self.path("kill_on_invalid_dependency")),
                 "kill_on_invalid_dependency")

    def request(self, top_script: Any) -> SubmitRequest:
        """What was read, validated as conductor's SubmitRequest; the field map completed."""
        if top_script is not None and not isinstance(top_script, str):
            raise values.bad("script", "expected a string")
        try:
            request = SubmitRequest.model_validate({"job": self.native, "script": top_script})
        except ValidationError as exc:
            raise _validation_error(exc, self.fields, self.path) from None
        self.fields["script"] = "script" if top_script is not None else self.path("script")
        for native_name, slurm_name in _DEFAULT_SOURCES.items():
            self.fields.setdefault(native_name, self.path(slurm_name))
        return request

    def warn_about_the_rest(self) -> None:
        """Every field not read above: ignored, and named in a warning unless it is empty."""
        for name, value in self.job.items():
            if name in self.handled or values.empty(value):
                continue
            kind = "not implemented by conductor" if name in SLURM_JOB_DESC_FIELDS \
                else "not a field of Slurm's job_desc_msg"
            self.warnings.add(self.path(name), f"Field {self.path(name)} is {kind}; ignored")


def translate(body: Any, *, version: str, user: str = "", now: datetime | None = None) -> Translation:
    """A job_submit_req body (parsed JSON) -> conductor's SubmitRequest (validated) and the warnings.

    ``version`` is the data_parser version of the path (it words warnings); ``user`` becomes the
    job's user when not empty; ``now`` (default: the current local time) is what relative
    ``begin_time`` forms count from.  Raises SlurmError (422) naming the field.
    """
    warnings = Warnings()
    job, prefix = _job_object(body)
    for key in body:
        if key not in ("script", "job", "jobs"):
            warnings.add(key, f"Field {key} is not a field of Slurm's job_submit_req; ignored")
    builder = _Builder(job, prefix, version, warnings, now or datetime.now(timezone.utc).astimezone())
    for read in (builder.texts, builder.tasks, builder.memory, builder.scheduling, builder.warn_about_the_rest):
        read()
    if user:
        builder.native["user"] = user
    return Translation(builder.request(body.get("script")), warnings, builder.fields)


def _validation_error(exc: ValidationError, fields: dict[str, str], path: Callable[[str], str]) -> SlurmError:
    """The first pydantic error, naming the field as the client sent it."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    name = loc[1] if len(loc) > 1 and loc[0] == "job" else (loc[0] if loc else "job")
    where = fields.get(name, "script" if name == "script" else path(name))
    where += "".join(f".{part}" for part in loc[2:] if part.isdigit())  # list indexes, not union tags
    return values.bad(where, str(first.get("msg", "invalid")).removeprefix("Value error, "))


def _node_count(nodes: Any, minimum: Any, path: Callable[[str], str]) -> tuple[int | None, str]:
    """How many nodes the job gets: minimum_nodes, else the low end of nodes ("2" or "2-4")."""
    least = values.finite(minimum, path("minimum_nodes"))
    if least is not None and least >= 1:
        return least, "minimum_nodes"  # type: ignore[return-value]
    if nodes is None or nodes == "":
        return None, "nodes"
    text = str(nodes) if isinstance(nodes, int) and not isinstance(nodes, bool) else nodes
    if not isinstance(text, str):
        raise values.bad(path("nodes"), f"{nodes!r} is not a node count such as 1 or 1-4")
    try:
        return slurm_options.minimum_nodes(text), "nodes"
    except ValueError as exc:
        raise values.bad(path("nodes"), str(exc)) from None


def _gpus(tres: Any, where: str) -> int | None:
    """tres_per_node "gres/gpu:2" (or "gres:gpu:2", "gres/gpu:a100:2") -> 2; other TRES are refused."""
    if tres is None or tres == "":
        return None
    if not isinstance(tres, str):
        raise values.bad(where, "expected a string such as gres/gpu:2")
    count = None
    for item in tres.split(","):
        gres = item.replace("gres/", "gres:", 1)
        count = slurm_options.gpus_from_gres(gres.removeprefix("gres:")) if gres.startswith("gres:") else None
        if count is None:
            raise values.bad(where, f"{item!r}: only gres/gpu:N (or gres/gpu:TYPE:N) is supported")
    return count


def _memory_per_cpu(value: int | str, cpus_per_task: Any, tasks_per_node: Any, where: str) -> int:
    try:
        megabytes = units.parse_memory_mb(value)
    except ValueError as exc:
        raise values.bad(where, str(exc)) from None
    return slurm_options.memory_per_node_mb(megabytes, cpus_per_task if isinstance(cpus_per_task, int) else 1,
                                            tasks_per_node if isinstance(tasks_per_node, int) else 1)


def _begin_time(value: Any, where: str, now: datetime) -> datetime | int | None:
    if isinstance(value, str) and not values.INTEGER.match(value):
        try:  # sbatch's --begin forms (now+1hour, 16:00, 2026-11-28T16:00:00)
            return units.parse_begin_time(value, now)
        except ValueError as exc:
            raise values.bad(where, str(exc)) from None
    return values.finite(value, where, bits=64)  # type: ignore[return-value]
