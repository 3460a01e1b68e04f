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
DEFAULT_OUTPUT_PATTERN = "conductor-%j.out"
DEFAULT_ARRAY_OUTPUT_PATTERN = "conductor-%A_%a.out"


@dataclass(frozen=True)
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

    @property
    def per_node(self) -> Resources:
        """What the job takes on each of its nodes (CPUs: cpus_per_task x ntasks_per_node)."""
        return Resources(self.cpus_per_task * self.ntasks_per_node, self.memory_per_node_mb, self.gpus_per_node)

    @property
    def total(self) -> Resources:
        """What the job takes in all, over its ``nodes`` nodes."""
        return self.per_node.times(self.nodes)


@dataclass(frozen=True)
class Usage:
    """What a run used: CPU seconds (user, system) and its peak resident memory."""

    cpu_time_user_s: float | None = None
    cpu_time_system_s: float | None = None
    max_rss_kb: int | None = None


NO_USAGE = Usage()


@dataclass(frozen=True)
class Ending:
    """How a job's run ended, as it is recorded: a final state, its reason and Slurm's exit code."""

    state: JobState
    reason: Reason = Reason.NONE
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    usage: Usage = NO_USAGE


@dataclass(frozen=True)
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


def job_environment(job: Job, *, node_name: str, node_list: Sequence[str] = ()) -> dict[str, str]:
    """The job's own environment plus CONDUCTOR_* and Slurm's SLURM_* variables.

    ``node_name`` is where the script runs (the first of ``node_list`` for a multi-node job).
    """
    spec = job.spec
    nodes = list(node_list) or [node_name]
    values = {
        "JOB_ID": str(job.id),
        "JOB_NAME": spec.name,
        "JOB_USER": spec.user,
        "JOB_ACCOUNT": spec.account,
        "JOB_PARTITION": spec.partition,
        "JOB_NODELIST": ",".join(nodes),
        "JOB_NUM_NODES": str(len(nodes)),
        "NNODES": str(len(nodes)),
        "CPUS_PER_TASK": str(spec.cpus_per_task),
        "NTASKS_PER_NODE": str(spec.ntasks_per_node),
        "NTASKS": str(spec.ntasks_per_node * len(nodes)),
        "CPUS_ON_NODE": str(spec.per_node.cpus),
        "MEM_PER_NODE": str(spec.memory_per_node_mb),
        "SUBMIT_DIR": spec.working_dir,
        "RESTART_COUNT": str(job.restart_count),
    }
    if spec.gpus_per_node:
        values["GPUS_ON_NODE"] = str(spec.gpus_per_node)
    if spec.array_job_id is not None and spec.array_task_id is not None:
        values.update(ARRAY_JOB_ID=str(spec.array_job_id), ARRAY_TASK_ID=str(spec.array_task_id))
    env = dict(spec.environment)
    for key, value in values.items():
        env[f"CONDUCTOR_{key}"] = value
        env[f"SLURM_{key}"] = value
    env["SLURM_JOBID"] = str(job.id)
    if spec.dependency:
        env["SLURM_JOB_DEPENDENCY"] = spec.dependency  # sbatch: the value of --dependency
    env["SLURMD_NODENAME"] = node_name
    return env
