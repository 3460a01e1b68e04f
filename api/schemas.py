"""Request and response bodies of the REST API (separate from the ORM and the domain)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from conductor import arrays, jobs, output, slurm_options, units
from conductor.db import listing
from conductor.exceptions import InvalidJobSpec

#: Bounds that keep values inside the database's integer columns.
MAX_MEMORY_MB = 2**40
MAX_TIME_LIMIT_S = 2**31 - 1
MAX_JOB_ID = 2**31 - 1


def time_limit_s(value: str | int) -> int | None:
    """-t's forms in seconds (None: no limit), within the database's integer column."""
    seconds = units.parse_time_limit_s(value)
    if seconds is not None and seconds > MAX_TIME_LIMIT_S:
        raise ValueError(f"must be at most {MAX_TIME_LIMIT_S} seconds")
    return seconds


class JobDescription(BaseModel):
    """The ``job`` object of a submission: the seed's fields, named as in Slurm's REST API."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "account": "test", "name": "concurrent-job-1", "partition": "compute-high-mem",
        "ntasks_per_node": 1, "cpus_per_task": 4, "memory_per_node": "8G"}})

    name: str = Field(jobs.DEFAULT_JOB_NAME, min_length=1, max_length=255, description="Job name (-J).",
                      examples=["train-model"])
    account: str = Field("", max_length=255, description="Account charged (-A).", examples=["physics"])
    partition: str = Field("", max_length=255, description="Partition (-p); empty: the site's default partition.",
                           examples=["batch"])
    user: str = Field("", max_length=255, description="Submitting user; the service's user when empty.",
                      examples=["alice"])
    cpus_per_task: StrictInt = Field(1, ge=1, le=1_000_000, description="CPUs per task (-c).", examples=[4])
    ntasks_per_node: StrictInt = Field(1, ge=1, le=1_000_000, description="Tasks per node (--ntasks-per-node).",
                                       examples=[1])
    nodes: StrictInt = Field(1, ge=1, le=10_000, description="Nodes the job needs at once (-N); CPUs, memory "
                             "and GPUs are per node. The script runs on the first; SLURM_JOB_NODELIST names all.",
                             examples=[1])
    gpus_per_node: StrictInt = Field(0, ge=0, le=1024, description="GPUs per node (--gpus-per-node, "
                                     "--gres=gpu:N); jobs asking for GPUs run only on nodes that have them.",
                                     examples=[0])
    memory_per_node: Union[StrictStr, StrictInt, None] = Field(
        None, description="Memory per node (--mem): a size with unit K/M/G/T, or a whole number of MB.",
        examples=["8G", 8192])
    time_limit: Union[StrictStr, StrictInt, None] = Field(
        None, description="Time limit (-t): minutes as a number, or [days-]hours:minutes:seconds; 0 = none.",
        examples=["1:00:00", 30])
    current_working_directory: str | None = Field(
        None, description="Working directory (-D); absolute. Default: the service's state directory.",
        examples=["/home/alice/run1"])
    environment: Union[dict[str, str], list[str], None] = Field(
        None, description="Environment of the job: an object or Slurm's list of KEY=VALUE strings.",
        examples=[{"OMP_NUM_THREADS": "4"}])
    argv: list[str] = Field(default_factory=list, description="Arguments passed to the script.",
                            examples=[["--epochs", "10"]])
    standard_output: str | None = Field(None, description="stdout file pattern (-o): %j %x %u %A %a %%.",
                                        examples=["out-%x-%j.txt"])
    standard_error: str | None = Field(None, description="stderr file pattern (-e); default: with stdout.",
                                       examples=["err-%j.txt"])
    priority: StrictInt = Field(0, ge=0, le=4_294_967_295, description="Priority; higher runs first.",
                                examples=[0])
    nice: StrictInt = Field(0, ge=-2_147_483_645, le=2_147_483_645, description="Nice value (--nice).",
                            examples=[0])
    requeue: bool = Field(True, description="May the job go back to PENDING (rather than end NODE_FAIL) when "
                                            "the scheduler stops or restarts while it runs (--requeue).")
    script: str | None = Field(None, description="The batch script (Slurm v0.0.41+ place); "
                                                 "the top-level script field is the seed's place.")
    array: StrictStr | None = Field(None, description="Job array indexes (-a): 0-15, 1,3,5, 0-15:4, 0-99%10 "
                                                      "(%N: at most N tasks run at once).", examples=["0-15%4"])
    dependency: StrictStr | None = Field(
        None, description="Dependencies (-d): after, afterany, afterok, afternotok or aftercorr with :JOBID..., "
                          "or singleton; ',' = and, '?' = or. JOBID: 42, 40_2 (one array task), or an array's "
                          "id (40 or 40_*: every task of the array).", examples=["afterok:12:13", "afterok:40"])
    kill_on_invalid_dependency: bool = Field(
        False, description="Cancel the job once its dependency can never be met (--kill-on-invalid-dep=yes); "
                           "otherwise it stays PENDING with reason DependencyNeverSatisfied.")
    hold: bool = Field(False, description="Submit held (-H): PENDING with reason JobHeldUser until released.")
    run_as: str = Field("", max_length=255, description="Unix account the script runs as, like sbatch --uid: "
                        "admins only, and only where jobs run as their submitters (AUTH=token, service "
                        "root). Empty: the submitter's own account.", examples=["root"])
    begin_time: Union[datetime, StrictInt, None] = Field(
        None, description="Do not start before this time (--begin): ISO 8601, or a Unix timestamp.",
        examples=["2026-11-28T16:00:00+00:00"])
    # sbatch's options as given: the job's SLURM_* variables exist only for options given, so a
    # value derived here (ntasks_per_node from tasks, memory from memory_per_cpu) is not "given".
    tasks: StrictInt | None = Field(None, ge=1, le=1_000_000, description="Tasks in all (-n): SLURM_NTASKS; "
                                    "ntasks_per_node, when not given, is tasks over nodes.", examples=[4])
    memory_per_cpu: Union[StrictStr, StrictInt, None] = Field(
        None, description="Memory per CPU (--mem-per-cpu), K/M/G/T or MB; instead of memory_per_node.",
        examples=["2G"])
    gpus: StrictInt | None = Field(None, ge=1, le=1_000_000, description="GPUs in all (-G), spread evenly over "
                                   "the nodes; instead of gpus_per_node.", examples=[2])
    tres_per_node: StrictStr | None = Field(None, description="Generic resources per node (--gres): gpu:N, "
                                            "gpu:TYPE:N or gres/gpu:N; instead of gpus_per_node.",
                                            examples=["gres/gpu:2"])
    export: StrictStr | None = Field(None, max_length=100_000, description="--export as given (SLURM_EXPORT_ENV); "
                                     "the client applies it to environment.", examples=["ALL,FOO=bar"])
    get_user_env: bool = Field(False, description="--get-user-env (SLURM_GET_USER_ENV=1).")
    open_mode: StrictStr | None = Field(None, description="--open-mode: append or truncate (the default) the "
                                        "output files.", examples=["append"])
    signal: StrictStr | None = Field(None, description="--signal=[B:]SIG[@SECONDS]: send SIG this many seconds "
                                     "(default 60) before the time limit; B: to the batch shell only, else to "
                                     "every process of the job.", examples=["B:USR2@90"])
    exclusive: bool = Field(False, description="--exclusive: the job gets whole nodes (all their CPUs and GPUs) "
                                               "and shares them with no other job.")
    comment: StrictStr | None = Field(None, max_length=4096, description="--comment, shown by squeue %k and "
                                      "scontrol.", examples=["rule align, sample=3"])
    command: StrictStr | None = Field(None, max_length=4096, description="The script's path as submitted "
                                      "(scontrol's Command); none for --wrap and stdin.",
                                      examples=["/home/alice/run1/job.sh"])

    @field_validator("open_mode")
    @classmethod
    def _open_mode(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in jobs.OPEN_MODES:
            raise ValueError(f"{value!r}: use append or truncate")
        return None if value is None else value.lower()

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str | None) -> str | None:
        return None if value is None else str(jobs.parse_warning_signal(value))

    @field_validator("tres_per_node")
    @classmethod
    def _tres(cls, value: str | None) -> int | None:
        if value is None:
            return None
        parts = value.removeprefix("gres/").split(":")
        if parts[0] != "gpu" or len(parts) not in (2, 3) or not parts[-1].isascii() or not parts[-1].isdigit() \
                or int(parts[-1]) < 1:
            raise ValueError(f"{value!r}: only gpu:N, gpu:TYPE:N or gres/gpu:N is supported")
        return int(parts[-1])

    @field_validator("array")
    @classmethod
    def _array(cls, value: str | None) -> str | None:
        if value is not None:
            arrays.parse(value)
        return value

    @field_validator("begin_time")
    @classmethod
    def _begin(cls, value: datetime | int | None) -> datetime | None:
        if isinstance(value, int):
            if not 0 <= value <= 2**40:
                raise ValueError("is not a plausible Unix timestamp")
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. +00:00 or Z)")
        return value

    @field_validator("memory_per_node", "memory_per_cpu")
    @classmethod
    def _memory(cls, value: str | int | None) -> int | None:
        if value is None:
            return None
        memory_mb = units.parse_memory_mb(value)
        if memory_mb > MAX_MEMORY_MB:
            raise ValueError(f"must be at most {MAX_MEMORY_MB} MB")
        return memory_mb

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: str | int | None) -> int | None:
        return None if value is None else time_limit_s(value)

    @field_validator("name", "account", "partition", "user", "current_working_directory", "standard_output",
                     "standard_error", "run_as", "export", "comment", "command")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        """PostgreSQL text cannot hold NUL, and a NUL in a path or argument cannot reach exec."""
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        return value

    @field_validator("argv")
    @classmethod
    def _argv_no_nul(cls, value: list[str]) -> list[str]:
        for index, arg in enumerate(value):
            if "\x00" in arg:
                raise ValueError(f"argument {index} contains a NUL byte")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str] | list[str] | None) -> dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, list):
            pairs = []
            for item in value:
                key, sep, val = item.partition("=")
                if not sep or not key:
                    raise ValueError(f"{item!r} is not KEY=VALUE")
                pairs.append((key, val))
            value = dict(pairs)
        for key, val in value.items():
            if not key or "=" in key:
                raise ValueError(f"{key!r} is not a variable name (empty, or contains '=')")
            if "\x00" in key + val:
                raise ValueError(f"{key!r}: NUL bytes are not allowed")
        return value


class SubmitRequest(BaseModel):
    """``POST /api/jobs/submit``: ``{"job": {...}, "script": "#!/bin/bash\\n..."}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "job": {"account": "test", "name": "concurrent-job-1", "partition": "compute-high-mem",
                "ntasks_per_node": 1, "cpus_per_task": 4, "memory_per_node": "8G"},
        "script": "#!/bin/bash\necho \"Job 1 is running\"\nsleep 10"}})

    job: JobDescription
    script: str | None = Field(None, description="The batch script (the seed's place).",
                               examples=["#!/bin/bash\nsleep 10"])

    def to_spec(self, *, default_dir: str) -> jobs.JobSpec:
        """The domain's JobSpec for this body (the script may sit at either of its two places).

        ``default_dir`` is the working directory of a job that names none.  Raises InvalidJobSpec
        naming ``script`` when it is missing or given twice with different contents.
        """
        desc = self.job
        if self.script is not None and desc.script is not None and self.script != desc.script:
            raise InvalidJobSpec("script", "given both as script and as job.script, with different contents")
        script = self.script if self.script is not None else desc.script
        if script is None:
            raise InvalidJobSpec("script", "is required")
        tasks_per_node, memory_mb, gpus = _layout(desc)
        return jobs.JobSpec(
            script=script, name=desc.name, account=desc.account, partition=desc.partition, user=desc.user,
            argv=tuple(desc.argv), working_dir=desc.current_working_directory or default_dir,
            environment=desc.environment or {}, cpus_per_task=desc.cpus_per_task,
            ntasks_per_node=tasks_per_node, nodes=desc.nodes, gpus_per_node=gpus, memory_per_node_mb=memory_mb,
            time_limit_s=desc.time_limit, priority=desc.priority, nice=desc.nice, requeue=desc.requeue,
            stdout_pattern=desc.standard_output, stderr_pattern=desc.standard_error,
            hold="user" if desc.hold else None, begin_time=desc.begin_time, dependency=desc.dependency,
            kill_on_invalid_dependency=desc.kill_on_invalid_dependency, run_as=desc.run_as,
            given=frozenset(name for name in jobs.GIVEN_OPTIONS
                            if name in desc.model_fields_set and getattr(desc, name) is not None)
            | ({"gpus"} if desc.gpus is not None else set()),
            ntasks=desc.tasks, memory_per_cpu_mb=desc.memory_per_cpu, export=desc.export,
            get_user_env=desc.get_user_env, open_mode=desc.open_mode, warning_signal=desc.signal,
            exclusive=desc.exclusive, comment=desc.comment, command=desc.command, array_spec=desc.array)


def _layout(desc: JobDescription) -> tuple[int, int, int]:
    """(tasks per node, memory per node MB, GPUs per node) from what was given, as sbatch derives them
    (conductor.slurm_options): tasks over nodes, memory per CPU x the node's CPUs, GPUs in all over nodes."""
    fields = desc.model_fields_set
    tasks_per_node = desc.ntasks_per_node
    if desc.tasks is not None and "ntasks_per_node" not in fields:
        tasks_per_node = slurm_options.layout(desc.tasks, None, desc.nodes).tasks_per_node
    memory_mb = desc.memory_per_node or 0
    if desc.memory_per_cpu is not None:
        if desc.memory_per_node is not None:
            raise InvalidJobSpec("memory_per_cpu", "give memory_per_node or memory_per_cpu, not both")
        memory_mb = slurm_options.memory_per_node_mb(desc.memory_per_cpu, desc.cpus_per_task, tasks_per_node)
    gpu_fields = [name for name in ("gpus", "gpus_per_node", "tres_per_node")
                  if name in fields and getattr(desc, name) is not None]
    if len(gpu_fields) > 1:
        raise InvalidJobSpec(gpu_fields[1], f"give one of {', '.join(gpu_fields)}, not several")
    gpus_per_node = desc.tres_per_node or desc.gpus_per_node  # (the validator made tres_per_node a count)
    if desc.gpus is not None:
        try:
            gpus_per_node = slurm_options.gpus_per_node(desc.gpus, desc.nodes)
        except ValueError as exc:
            raise InvalidJobSpec("gpus", f"{exc}; use gpus_per_node") from None
    return tasks_per_node, memory_mb, gpus_per_node


class SubmitResponse(BaseModel):
    """The new job's id, and the job as stored."""

    job_id: int = Field(description="The new job's id (for an array: the array's id, its first task's).",
                        examples=[42])
    job: "JobOut"
    array_task_ids: list[int] = Field(default_factory=list, description="For an array: every task's job id.")


class JobOut(BaseModel):
    """A job as ``conductor show`` and ``GET /api/jobs/{id}`` present it."""

    job_id: int = Field(examples=[42])
    name: str = Field(examples=["train-model"])
    account: str = Field(examples=["physics"])
    partition: str = Field(examples=["default"])
    user: str = Field(examples=["alice"])
    state: jobs.JobState = Field(examples=["RUNNING"])
    reason: jobs.Reason = Field(description="Why it waits or how it ended (Slurm's reason code).",
                                examples=["None"])
    reason_message: str = Field("", description="Free text about the reason: which node left, what failed "
                                                "to launch; empty when there is none.", examples=[""])
    exit_code: str = Field(description="Slurm's exit:signal.", examples=["0:0"])
    return_code: int | None = Field(description="The script's exit status, when it ended.", examples=[0])
    signal: int | None = Field(description="Signal that ended the script, if any.", examples=[None])
    cpus_per_task: int = Field(examples=[4])
    ntasks_per_node: int = Field(examples=[1])
    cpus: int = Field(description="CPUs of the whole job: cpus_per_task x ntasks_per_node x nodes.", examples=[4])
    memory_per_node_mb: int = Field(examples=[8192])
    time_limit_s: int | None = Field(description="Seconds; null = no limit.", examples=[3600])
    priority: int = Field(examples=[0])
    nice: int = Field(examples=[0])
    requeue: bool = Field(examples=[True])
    restart_count: int = Field(examples=[0])
    submit_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    node: str | None = Field(description="Node the job runs or ran on.", examples=["kunpeng-compute-01"])
    working_directory: str = Field(examples=["/home/alice/run1"])
    stdout_path: str = Field(examples=["/home/alice/run1/conductor-42.out"])
    stderr_path: str = Field(examples=["/home/alice/run1/conductor-42.out"])
    cpu_time_user_s: float | None = Field(examples=[12.5])
    cpu_time_system_s: float | None = Field(examples=[0.4])
    max_rss_kb: int | None = Field(examples=[204800])
    display_id: str = Field(description="Slurm's name for the job: 42, or 40_2 for an array task.",
                            examples=["40_2"])
    array_job_id: int | None = Field(None, examples=[40])
    array_task_id: int | None = Field(None, examples=[2])
    array_max_running: int | None = Field(None, description="The array's %N throttle.", examples=[4])
    dependency: str | None = Field(None, description="--dependency as submitted.", examples=["afterok:40"])
    dependency_state: str | None = Field(
        None, description="The dependency as Slurm shows it (scontrol's Dependency=, squeue's %E): what is not "
                          "fulfilled yet, each with (unfulfilled) or (failed); an array as ID_*. null once "
                          "fulfilled, without a dependency, and in a submit's answer (not read there).",
        examples=["afterok:40_*(unfulfilled)"])
    kill_on_invalid_dependency: bool = Field(False, description="--kill-on-invalid-dep.")
    hold: str | None = Field(None, description="null, user or admin.", examples=[None])
    begin_time: datetime | None = Field(None, description="Earliest start (--begin).")
    cancel_requested: bool = Field(False, description="A cancel was asked while the job ran.")
    nodes: int = Field(1, description="Nodes the job needs at once (-N).", examples=[1])
    gpus_per_node: int = Field(0, description="GPUs per node.", examples=[0])
    node_list: str | None = Field(None, description="Every node the job runs or ran on (the first runs the script).",
                                  examples=["b1,b2"])
    run_as: str = Field("", description="Unix account the script runs as; empty: the service's own user.",
                        examples=["alice"])
    comment: str | None = Field(None, description="--comment.", examples=["rule align"])
    exclusive: bool = Field(False, description="--exclusive: whole nodes.")
    open_mode: str | None = Field(None, description="--open-mode: append or truncate (null: truncate).")
    signal_spec: str | None = Field(None, description="--signal as [B:]NUMBER@SECONDS.", examples=["B:12@90"])
    command: str | None = Field(None, description="The script's path as submitted; null for --wrap and stdin.")
    submit_host: str | None = Field(None, description="Host it was submitted from (SLURM_SUBMIT_HOST).")
    submit_dir: str | None = Field(None, description="Directory it was submitted from (SLURM_SUBMIT_DIR).")
    ntasks: int = Field(1, description="Tasks in all (-n, else ntasks_per_node x nodes).", examples=[1])
    cluster: str = Field("", description="Its cluster (CLUSTER_NAME).", examples=["conductor"])
    array_spec: str | None = Field(None, description="The array's --array, on each task.", examples=["0-15%4"])
    priority_factors: dict | None = Field(
        None, description="A pending job's current priority and its factors (age, fairshare, job_size, "
                          "partition in [0, 1]; admin and nice as set), as sprio shows them.",
        examples=[{"priority": 2031, "age": 0.0012, "fairshare": 1.0, "job_size": 0.03, "partition": 1.0,
                   "nice": 0, "admin": 0}])

    @classmethod
    def from_job(cls, job: jobs.Job, factors: dict | None = None, dependency_state: str | None = None) -> "JobOut":
        spec = job.spec
        return cls(
            dependency_state=dependency_state, kill_on_invalid_dependency=spec.kill_on_invalid_dependency,
            nodes=spec.nodes, gpus_per_node=spec.gpus_per_node, node_list=job.node_list, priority_factors=factors,
            job_id=job.id, name=spec.name, account=spec.account, partition=spec.partition, user=spec.user,
            state=job.state, reason=job.reason, reason_message=job.reason_message, exit_code=job.exit_code_text, return_code=job.exit_code,
            signal=job.signal, cpus_per_task=spec.cpus_per_task, ntasks_per_node=spec.ntasks_per_node,
            cpus=spec.total.cpus, memory_per_node_mb=spec.memory_per_node_mb, time_limit_s=spec.time_limit_s,
            priority=spec.priority, nice=spec.nice, requeue=spec.requeue, restart_count=job.restart_count,
            submit_time=job.submit_time, start_time=job.start_time, end_time=job.end_time, node=job.node_name,
            working_directory=spec.working_dir, stdout_path=job.stdout_path, stderr_path=job.stderr_path,
            cpu_time_user_s=job.usage.cpu_time_user_s, cpu_time_system_s=job.usage.cpu_time_system_s,
            max_rss_kb=job.usage.max_rss_kb, display_id=job.display_id, array_job_id=spec.array_job_id,
            array_task_id=spec.array_task_id, array_max_running=spec.array_max_running, dependency=spec.dependency,
            hold=spec.hold, begin_time=spec.begin_time, cancel_requested=job.cancel_requested, run_as=spec.run_as,
            comment=spec.comment, exclusive=spec.exclusive, open_mode=spec.open_mode,
            signal_spec=spec.warning_signal, command=spec.command,
            submit_host=spec.submit_host or None, submit_dir=spec.environment.get("SLURM_SUBMIT_DIR"),
            ntasks=spec.ntasks or spec.ntasks_per_node * spec.nodes, cluster=spec.cluster,
            array_spec=spec.array_spec)


class FieldError(BaseModel):
    field: Annotated[str, Field(description="Dotted path of the offending field.", examples=["job.cpus_per_task"])]
    reason: Annotated[str, Field(examples=["must be at least 1"])]


class ErrorBody(BaseModel):
    status: int = Field(examples=[422])
    code: str = Field(description="invalid_request, not_found, unavailable or internal.",
                      examples=["invalid_request"])
    message: str = Field(examples=["job.cpus_per_task: must be at least 1"])
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorBody


class HealthResponse(BaseModel):
    status: str = Field(description="ok when every component is ok.", examples=["ok"])
    components: dict[str, str] = Field(description="database, queue and ray, each ok or why not.",
                                       examples=[{"database": "ok", "queue": "ok", "ray": "ok: 1 node(s), 0 pending, "
                                                                                      "0 running"}])


SubmitResponse.model_rebuild()


_STATE_NAMES = ", ".join(state.value for state in jobs.JobState)
#: Longest list a repeatable filter takes (each value is one bound SQL parameter).
MAX_FILTER_VALUES = 1000
_NAME_LIST = Annotated[list[Annotated[str, Field(max_length=255)]], Field(max_length=MAX_FILTER_VALUES)]


class JobListQuery(BaseModel):
    """``GET /api/jobs`` query: filters are ANDed, the values of a repeated filter ORed."""

    model_config = ConfigDict(extra="forbid")

    state: _NAME_LIST = Field(
        default_factory=list, description=f"Job state, repeatable or comma-separated, case-insensitive: "
                                          f"{_STATE_NAMES}. Default: every state.",
        examples=[["PENDING", "RUNNING"]])
    user: _NAME_LIST = Field(default_factory=list, description="Submitting user (squeue -u); repeatable.",
                             examples=[["alice"]])
    account: _NAME_LIST = Field(default_factory=list, description="Account (-A); repeatable.",
                                examples=[["physics"]])
    partition: _NAME_LIST = Field(default_factory=list, description="Partition (-p); repeatable.",
                                  examples=[["default"]])
    name: _NAME_LIST = Field(default_factory=list, description="Job name (-n), exact; repeatable.",
                             examples=[["train-model"]])
    job_id: Annotated[list[Annotated[int, Field(ge=1, le=MAX_JOB_ID)]], Field(max_length=MAX_FILTER_VALUES)] = \
        Field(default_factory=list, description="Job id (-j); repeatable.", examples=[[42, 43]])
    job: Annotated[list[Annotated[str, Field(max_length=24)]], Field(max_length=MAX_FILTER_VALUES)] = Field(
        default_factory=list, description="Jobs as Slurm names them (squeue -j, sacct -j), repeatable or "
                                          "comma-separated: 42 (and, for an array's id, every task), 40_2.",
        examples=[["42", "40_2"]])
    since: datetime | None = Field(None, description="Submitted at or after (ISO 8601; UTC without an offset).",
                                   examples=["2026-11-28T10:00:00+01:00"])
    until: datetime | None = Field(None, description="Submitted at or before (ISO 8601; UTC without an offset).",
                                   examples=["2026-11-28T18:00:00Z"])
    ended_since: datetime | None = Field(None, description="Ended at or after (sacct -S); only ended jobs match.",
                                         examples=["2026-11-28T00:00:00Z"])
    ended_until: datetime | None = Field(None, description="Ended at or before (sacct -E); only ended jobs match.",
                                         examples=["2026-11-29T00:00:00Z"])
    cursor: int | None = Field(None, ge=0, le=MAX_JOB_ID, description="next_cursor of the previous page: "
                                                                      "jobs with a larger id follow.",
                               examples=[100])
    limit: int = Field(100, ge=1, le=listing.MAX_LIMIT, description=f"Most jobs in one page (1 to {listing.MAX_LIMIT}).",
                       examples=[100])

    @field_validator("job")
    @classmethod
    def _refs(cls, values: list[str]) -> list[str]:
        texts = [part.strip() for value in values for part in value.split(",") if part.strip()]
        for text in texts:
            jobs.parse_job_ref(text)
        if len(texts) > MAX_FILTER_VALUES:
            raise ValueError(f"at most {MAX_FILTER_VALUES} jobs")
        return texts

    @field_validator("state")
    @classmethod
    def _states(cls, values: list[str]) -> list[str]:
        names = [part.strip().upper() for value in values for part in value.split(",") if part.strip()]
        for name in names:
            if name not in jobs.JobState.__members__:
                raise ValueError(f"{name!r} is not a job state; use one of {_STATE_NAMES}")
        return names


class JobListResponse(BaseModel):
    """One page of jobs in id order."""

    jobs: list[JobOut]
    next_cursor: int | None = Field(description="Pass as cursor for the next page; null on the last page.",
                                    examples=[None])


class OutputQuery(BaseModel):
    """``GET /api/jobs/{job_id}/output`` query."""

    model_config = ConfigDict(extra="forbid")

    stream: str = Field("stdout", description="stdout or stderr; stderr is the stdout file when the job "
                                              "has no -e.", examples=["stderr"])
    offset: int = Field(0, ge=0, le=2**62, description="First byte to return (the previous "
                                                        "X-Conductor-Output-Next-Offset when following).",
                        examples=[0])
    limit: int = Field(1024 * 1024, ge=1, le=output.MAX_LIMIT_BYTES, description="Most bytes to return.",
                       examples=[1048576])
    tail: int | None = Field(None, ge=1, le=output.MAX_LIMIT_BYTES, description="Return the last this many bytes "
                                                                          "instead (offset and limit ignored).",
                             examples=[4096])

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if value not in ("stdout", "stderr"):
            raise ValueError(f"{value!r} is not a stream; use stdout or stderr")
        return value


class ControlResponse(BaseModel):
    """Which jobs an operation changed (an array's id expands to its tasks)."""

    cancelled: list[int] = Field(default_factory=list, description="Pending jobs now CANCELLED.")
    signalled: list[int] = Field(default_factory=list, description="Running jobs sent the signal "
                                                                   "(or, without one, being terminated).")
    held: list[int] = Field(default_factory=list)
    released: list[int] = Field(default_factory=list)
    requeued: list[int] = Field(default_factory=list)
    updated: list[int] = Field(default_factory=list, description="Pending jobs changed (PATCH).")


#: Most jobs one ``POST /api/jobs/batch`` may carry.
MAX_BATCH_JOBS = 1000


class BatchSubmitRequest(BaseModel):
    """``POST /api/jobs/batch``: ``{"jobs": [<submit body>, ...]}``, stored all or nothing."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"jobs": [
        {"job": {"name": "step-1", "cpus_per_task": 2, "memory_per_node": "4G"}, "script": "#!/bin/bash\ntrue"},
        {"job": {"name": "step-2", "cpus_per_task": 1}, "script": "#!/bin/bash\ntrue"}]}})

    jobs: list[SubmitRequest] = Field(min_length=1, max_length=MAX_BATCH_JOBS,
                                      description=f"1 to {MAX_BATCH_JOBS} submissions, each the body of "
                                                  "POST /api/jobs/submit (job arrays excepted).")


class BatchSubmitResponse(BaseModel):
    """The new jobs' ids, in the order of the request."""

    job_ids: list[int] = Field(description="One id per submitted job, in request order.", examples=[[42, 43]])


class Capacity(BaseModel):
    """Total, allocated (unreleased allocation rows) and free."""

    total: int = Field(examples=[32])
    allocated: int = Field(examples=[12])
    free: int = Field(examples=[20])


class NodeOut(BaseModel):
    """A Ray node as conductor schedules it (`sinfo -N`)."""

    name: str = Field(examples=["kunpeng-compute-01"])
    ray_node_id: str = Field(examples=["761a8647a92c06161074cdf0e0ace83f8870c51e5d3d1794012be471"])
    state: str = Field(description="up or down.", examples=["up"])
    partition: str = Field(description="From the node label conductor.io/partition; default when absent.",
                           examples=["default"])
    labels: dict[str, str] = Field(examples=[{"conductor.io/partition": "default"}])
    cpus: Capacity
    memory_mb: Capacity
    gpus: int = Field(examples=[0])
    gpus_allocated: int = Field(0, description="GPUs that unreleased allocations hold on it.", examples=[0])


class NodeListResponse(BaseModel):
    nodes: list[NodeOut]


class PartitionOut(BaseModel):
    """Nodes grouped by partition (`sinfo`)."""

    name: str = Field(examples=["default"])
    state: str = Field(description="up (jobs start; some node is up), inactive (no node is up: jobs wait) or "
                                   "down (State=DOWN: jobs are accepted and wait).", examples=["up"])
    nodes: list[str] = Field(description="Its up nodes.", examples=[["kunpeng-compute-01"]])
    cpus: Capacity
    memory_mb: Capacity
    gpus: int = Field(0, description="GPUs of its up nodes.", examples=[0])
    gpus_allocated: int = Field(0, description="GPUs that unreleased allocations hold on its up nodes.",
                                examples=[0])
    pending_jobs: int = Field(examples=[3])
    running_jobs: int = Field(examples=[4])
    default: bool = Field(False, description="Jobs that name no partition go here.")
    default_time_s: int | None = Field(None, description="Time limit of jobs that ask for none.", examples=[3600])
    max_time_s: int | None = Field(None, description="Longest time limit accepted; null = unlimited.")
    max_cpus_per_job: int | None = Field(None, description="Most CPUs one job may ask for.")
    max_nodes: int | None = Field(None, description="Most nodes one job may ask for.")
    priority_job_factor: int = Field(1, description="Its weight in the partition priority factor.")
    covers: str = Field("ALL", description="Which nodes it covers: ALL, a node list, or a label.",
                        examples=["label conductor.io/partition=gpu"])


class PartitionListResponse(BaseModel):
    partitions: list[PartitionOut]


class QueueSummary(BaseModel):
    """The queue at a glance: pending and running jobs, and why the pending ones wait."""

    pending_jobs: int = Field(examples=[12])
    running_jobs: int = Field(examples=[4])
    pending_cpus: int = Field(description="CPUs the pending jobs ask for.", examples=[48])
    running_cpus: int = Field(description="CPUs the running jobs hold.", examples=[16])
    pending_by_reason: dict[str, int] = Field(examples=[{"Resources": 1, "Priority": 11}])


class JobUpdate(BaseModel):
    """``PATCH /api/jobs/{job_id}``: what scontrol update may change of a pending job; omitted fields stay."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"time_limit": "30:00", "nice": 10}})

    time_limit: Union[StrictStr, StrictInt, None] = Field(
        None, description="New time limit (-t's forms; 0 or UNLIMITED: none). Users may only lower it.",
        examples=["30:00"])
    priority: StrictInt | None = Field(None, ge=0, le=4_294_967_295, description="New admin priority "
                                       "(admins only).", examples=[100])
    nice: StrictInt | None = Field(None, ge=-2_147_483_645, le=2_147_483_645, description="New nice value; "
                                   "below 0 for admins only.", examples=[10])
    comment: StrictStr | None = Field(None, max_length=4096, description="New comment.")
    name: StrictStr | None = Field(None, min_length=1, max_length=255, description="New job name.")

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: str | int | None) -> int | None:
        if value is None:
            return None
        seconds = time_limit_s(value)
        return seconds if seconds is not None else 0  # 0: unlimited (None means "not given")

    @field_validator("comment", "name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        return value
