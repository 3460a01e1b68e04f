"""The job domain: states, reasons, the request (JobSpec), the stored view (Job).  No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Sequence

from conductor.resources import Resources


class JobState(str, Enum):
    """Slurm's base job states."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"

    def is_terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)

    @property
    def short(self) -> str:
        """squeue's compact code (PD, R, CD, F, CA, TO, OOM, NF)."""
        return _SHORT_CODES[self]


_SHORT_CODES = {
    JobState.PENDING: "PD",
    JobState.RUNNING: "R",
    JobState.COMPLETED: "CD",
    JobState.FAILED: "F",
    JobState.CANCELLED: "CA",
    JobState.TIMEOUT: "TO",
    JobState.OUT_OF_MEMORY: "OOM",
    JobState.NODE_FAIL: "NF",
}

TERMINAL_STATES = frozenset(state for state in JobState if state.is_terminal())


class Reason(str, Enum):
    """Slurm's reason codes for pending and ended jobs (the ones conductor sets).

    The code is one column of the job row; free text about it (which node left, what failed
    to launch) is a second one, ``reason_message``.
    """

    NONE = "None"
    RESOURCES = "Resources"  #: waits for CPUs, memory or a worker slot
    PRIORITY = "Priority"  #: a higher-priority job of its partition waits first
    PARTITION_CONFIG = "PartitionConfig"  #: no live node is big enough
    PARTITION_DOWN = "PartitionDown"  #: its partition is State=DOWN
    NON_ZERO_EXIT = "NonZeroExitCode"  #: also for a script killed by a signal (exit code 0:N)
    LAUNCH_FAILED = "JobLaunchFailure"
    SYSTEM_FAILURE = "SystemFailure"
    NODE_DOWN = "NodeDown"
    TIME_LIMIT = "TimeLimit"
    OUT_OF_MEMORY = "OutOfMemory"
    REQUEUED = "Requeued"
    DEPENDENCY = "Dependency"  #: waits for the jobs it depends on
    DEPENDENCY_NEVER = "DependencyNeverSatisfied"  #: its dependency can no longer be met
    HELD_USER = "JobHeldUser"
    HELD_ADMIN = "JobHeldAdmin"
    BEGIN_TIME = "BeginTime"  #: --begin is still in the future
    ARRAY_TASK_LIMIT = "JobArrayTaskLimit"  #: the array's %N throttle is reached


#: Job name Slurm gives a script read from stdin.
DEFAULT_JOB_NAME = "sbatch"
DEFAULT_PARTITION = "default"
#: sbatch's default output files (JOB_OUTPUT_PATTERN / JOB_ARRAY_OUTPUT_PATTERN change them).
DEFAULT_OUTPUT_PATTERN = "slurm-%j.out"
DEFAULT_ARRAY_OUTPUT_PATTERN = "slurm-%A_%a.out"
#: --open-mode values.
OPEN_MODES = ("append", "truncate")
#: JobSpec.given: options whose SLURM_* variable sbatch sets only when the option was given.
GIVEN_OPTIONS = frozenset({"cpus_per_task", "ntasks_per_node", "memory_per_node", "gpus", "gpus_per_node"})
#: --signal's default lead time (seconds before the time limit) and its largest value.
DEFAULT_SIGNAL_LEAD_S = 60
MAX_SIGNAL_LEAD_S = 65535


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user asks for.  Built by the service from API/CLI input, validated there."""

    script: str
    name: str = DEFAULT_JOB_NAME
    account: str = ""
    partition: str = ""  #: empty: the site's default partition (the service fills it in)
    user: str = ""
    argv: tuple[str, ...] = ()
    working_dir: str = "/"
    environment: dict[str, str] = field(default_factory=dict)
    cpus_per_task: int = 1
    ntasks_per_node: int = 1
    memory_per_node_mb: int = 0
    time_limit_s: int | None = None
    priority: int = 0
    nice: int = 0
    requeue: bool = True
    stdout_pattern: str | None = None
    stderr_pattern: str | None = None
    hold: str | None = None  #: None, "user" or "admin"
    begin_time: datetime | None = None
    dependency: str | None = None
    kill_on_invalid_dependency: bool = False  #: --kill-on-invalid-dep: cancel once the dependency cannot be met
    array_job_id: int | None = None
    array_task_id: int | None = None
    array_max_running: int | None = None
    nodes: int = 1  #: nodes the job needs at once (-N); resources below are per node
    gpus_per_node: int = 0  #: --gpus / --gres=gpu:N
    #: Unix account the script runs as (sbatch --uid); empty: the service's own user (AUTH=none, or not root).
    run_as: str = ""
    #: Options whose SLURM_* variable exists only when they were given (sbatch's "only set if"):
    #: names from GIVEN_OPTIONS.
    given: frozenset[str] = frozenset()
    ntasks: int | None = None  #: -n as given (SLURM_NTASKS)
    memory_per_cpu_mb: int | None = None  #: --mem-per-cpu as given (memory_per_node_mb is derived from it)
    export: str | None = None  #: --export as given (SLURM_EXPORT_ENV)
    get_user_env: bool = False  #: --get-user-env (SLURM_GET_USER_ENV)
    open_mode: str | None = None  #: --open-mode: append or truncate (None: truncate, SLURM_OPEN_MODE unset)
    warning_signal: str | None = None  #: --signal as ``[B:]NUMBER@SECONDS`` (see parse_warning_signal)
    exclusive: bool = False  #: --exclusive: whole nodes, shared with no other job
    comment: str | None = None  #: --comment
    command: str | None = None  #: the script's path as submitted (scontrol's Command); None for --wrap/stdin
    array_spec: str | None = None  #: --array as given (SLURM_ARRAY_TASK_COUNT/MIN/MAX/STEP)
    cluster: str = ""  #: the cluster the job belongs to (SLURM_CLUSTER_NAME); the service fills it in
    submit_host: str = ""  #: where it was submitted from (SLURM_SUBMIT_HOST); the service fills it in

    @property
    def per_node(self) -> Resources:
        """What the job takes on each of its nodes (CPUs: cpus_per_task x ntasks_per_node)."""
        return Resources(self.cpus_per_task * self.ntasks_per_node, self.memory_per_node_mb, self.gpus_per_node)

    @property
    def total(self) -> Resources:
        """What the job takes in all, over its ``nodes`` nodes."""
        return self.per_node.times(self.nodes)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a run used: CPU seconds (user, system) and its peak resident memory."""

    cpu_time_user_s: float | None = None
    cpu_time_system_s: float | None = None
    max_rss_kb: int | None = None


NO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class Ending:
    """How a job's run ended, as it is recorded: a final state, its reason and Slurm's exit code."""

    state: JobState
    reason: Reason = Reason.NONE
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    usage: Usage = NO_USAGE


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job as the service and the scheduler see it."""

    id: int
    spec: JobSpec
    state: JobState
    reason: Reason
    submit_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    node_name: str | None = None
    node_list: str | None = None  #: every node of a multi-node job, comma-separated
    stdout_path: str = ""
    stderr_path: str = ""
    restart_count: int = 0
    usage: Usage = NO_USAGE
    cancel_requested: bool = False
    reason_message: str = ""  #: free text about ``reason`` (which node left, what failed to launch)

    @property
    def display_id(self) -> str:
        """``42``, or Slurm's ``40_2`` for task 2 of array job 40."""
        if self.spec.array_job_id is not None and self.spec.array_task_id is not None:
            return f"{self.spec.array_job_id}_{self.spec.array_task_id}"
        return str(self.id)

    @property
    def exit_code_text(self) -> str:
        """Slurm's ``exit:signal`` form, e.g. ``0:0``, ``3:0``, ``0:9``."""
        return f"{self.exit_code or 0}:{self.signal or 0}"


_PATTERN = re.compile(r"%(\d*)([%AajxuNn])")


def expand_output_pattern(
    pattern: str,
    *,
    job_id: int,
    name: str,
    user: str,
    node: str = "",
    array_job_id: int | None = None,
    array_task_id: int | None = None,
) -> str:
    """Expand sbatch's filename pattern (%j %x %u %A %a %N %n %%, with %4j zero padding)."""
    values = {
        "j": str(job_id),
        "x": name,
        "u": user,
        "N": node,
        "n": "0",
        "A": str(array_job_id if array_job_id is not None else job_id),
        "a": str(array_task_id) if array_task_id is not None else "4294967294",
    }

    def replace(match: re.Match[str]) -> str:
        width, code = match.group(1), match.group(2)
        if code == "%":
            return "%"
        value = values[code]
        return value.zfill(int(width)) if width and value.isdigit() else value

    return _PATTERN.sub(replace, pattern)


@dataclass(frozen=True)
class JobRef:
    """A job as Slurm's commands name it: ``42``, or ``40_2`` (task 2 of array 40)."""

    job_id: int
    task_id: int | None = None

    def __str__(self) -> str:
        return str(self.job_id) if self.task_id is None else f"{self.job_id}_{self.task_id}"


_JOB_REF = re.compile(r"([0-9]+)(?:_([0-9]+))?")


def parse_job_ref(text: str) -> JobRef:
    """``42`` or ``40_2`` (ASCII digits only: ``int()`` would read ``42420_4`` as 424204); ValueError else."""
    match = _JOB_REF.fullmatch(text.strip()) if text.isascii() else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not a job id (42, or 40_2 for task 2 of array 40)")
    task = match.group(2)
    return JobRef(int(match.group(1)), int(task) if task is not None else None)


@dataclass(frozen=True)
class WarningSignal:
    """--signal=[B:]SIG[@TIME]: send ``signal`` ``lead_s`` seconds before the time limit."""

    signal: int
    lead_s: int = DEFAULT_SIGNAL_LEAD_S
    batch_only: bool = False  #: B: only the batch shell, not the whole process group

    def __str__(self) -> str:
        return f"{'B:' if self.batch_only else ''}{self.signal}@{self.lead_s}"


def parse_warning_signal(text: str) -> WarningSignal:
    """sbatch's ``--signal=[{R|B}:]<sig>[@sig_time]`` (sig by name or number; R: is accepted and has no
    effect here, as there are no reservations); ValueError naming what is wrong."""
    import signal as signals  # the standard library's names; no I/O

    rest, flags = text.strip(), ""
    if ":" in rest:
        flags, _, rest = rest.partition(":")
        if not flags or not set(flags.upper()) <= {"B", "R"}:
            raise ValueError(f"{text!r}: the prefix before ':' must be B, R or RB")
    name, at, lead = rest.partition("@")
    number = _signal_number(name, signals)
    if at and not (lead.isascii() and lead.isdigit() and int(lead) <= MAX_SIGNAL_LEAD_S):
        raise ValueError(f"{text!r}: the time after @ must be 0 to {MAX_SIGNAL_LEAD_S} seconds")
    return WarningSignal(number, int(lead) if at else DEFAULT_SIGNAL_LEAD_S, "B" in flags.upper())


def _signal_number(name: str, signals) -> int:  # noqa: ANN001 - the signal module
    text = name.strip().upper()
    if text.isascii() and text.isdigit() and 0 < int(text) < signals.NSIG:
        return int(text)
    try:
        return int(signals.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise ValueError(f"{name!r} is not a signal name or number") from None


def job_environment(job: Job, *, node_name: str, node_list: Sequence[str] = (),
                    per_node: Resources | None = None) -> dict[str, str]:
    """The job's own environment plus CONDUCTOR_* and sbatch's SLURM_* variables (conductor.environment).

    ``node_name`` is where the script runs (the first of ``node_list`` for a multi-node job);
    ``per_node`` is what the job holds on each node (an --exclusive job holds whole nodes).
    """
    from conductor import environment  # it builds on this module's types

    return environment.batch_environment(job, node_name=node_name, node_list=node_list, per_node=per_node)
