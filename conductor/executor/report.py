"""What the executor is asked (RunRequest) and what it reports (RunReport, with its EndCause)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class EndCause(str, Enum):
    """How one run of a job ended, as seen by whoever watched it.

    The executor reports the first five; the others are Ray's view of a task that never
    reported (its worker or node died) or the scheduler's view of one it can no longer see.
    Which final state a cause gives is decided in one place (conductor.scheduler.ending).
    """

    EXITED = "exited"  #: the script ended by itself, with an exit code or a signal
    TIMEOUT = "timeout"  #: past its time limit: SIGTERM to its group, KillWait, SIGKILL
    OUT_OF_MEMORY = "out_of_memory"  #: its group's memory passed the limit: SIGKILL
    STOPPED = "stopped"  #: it was told to stop (cancel, requeue, shutdown), or cancelled before it started
    LAUNCH_FAILED = "launch_failed"  #: the script never started (``detail`` says why)
    WORKER_DIED = "worker_died"  #: the Ray worker running it died without reporting
    NODE_DIED = "node_died"  #: its node died
    LOST = "lost"  #: nothing runs it any more and nothing says how it ended
    SYSTEM_ERROR = "system_error"  #: any other failure of the task itself (``detail`` says which)


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to run one job attempt on a node."""

    job_id: int
    script: str
    working_dir: str
    stdout_path: str
    stderr_path: str
    environment: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    time_limit_s: int | None = None
    kill_wait_s: float = 30.0
    memory_limit_mb: int | None = None  # None or 0: no limit (sbatch --mem=0)
    gpus: int = 0  #: GPUs Ray assigned to the task (their ids reach the job as CUDA_VISIBLE_DEVICES)
    #: The attempt's token: its keeper stops and signals it through conductor.executor.control ("": none).
    control: str = ""
    run_as: str = ""  #: Unix account to run as (resolved on this node); empty: the worker's own user
    append_output: bool = False  #: open the output files for appending (--open-mode=append), not truncated
    #: --signal: send ``warning_signal`` ``warning_lead_s`` seconds before the time limit, to the batch
    #: shell only (``warning_batch_only``) or to the job's whole process group.
    warning_signal: int | None = None
    warning_lead_s: int = 60
    warning_batch_only: bool = False


@dataclass(frozen=True)
class RunReport:
    """How one attempt ended: its cause, the script's exit status, and what it used."""

    cause: EndCause
    exit_code: int | None = None
    signal: int | None = None
    detail: str = ""  #: why it never started (LAUNCH_FAILED), or the failure (SYSTEM_ERROR)
    cpu_time_user_s: float = 0.0
    cpu_time_system_s: float = 0.0
    max_rss_kb: int = 0
    elapsed_s: float = 0.0
