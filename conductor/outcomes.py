"""How a job's run ended, as a Slurm state and reason: from the executor's result or Ray's error."""

from __future__ import annotations

import ray

from conductor import executor, jobs
from conductor.db.repository import Outcome


def of_result(result: executor.RunResult) -> Outcome:
    """Map how the process ended to a Slurm state and reason."""
    usage = dict(cpu_time_user_s=result.cpu_time_user_s, cpu_time_system_s=result.cpu_time_system_s,
                 max_rss_kb=result.max_rss_kb)
    if result.launch_error:
        return Outcome(jobs.JobState.FAILED, f"{jobs.Reason.LAUNCH_FAILED}: {result.launch_error}", exit_code=1)
    if result.cancelled:
        return Outcome(jobs.JobState.CANCELLED, jobs.Reason.NONE, exit_code=0, signal=15, **usage)
    if result.out_of_memory:
        return Outcome(jobs.JobState.OUT_OF_MEMORY, jobs.Reason.OUT_OF_MEMORY, exit_code=0, signal=result.signal,
                       **usage)
    if result.timed_out:
        return Outcome(jobs.JobState.TIMEOUT, jobs.Reason.TIME_LIMIT, exit_code=result.exit_code,
                       signal=result.signal, **usage)
    if result.signal or result.exit_code:
        return Outcome(jobs.JobState.FAILED, jobs.Reason.NON_ZERO_EXIT, exit_code=result.exit_code,
                       signal=result.signal, **usage)
    return Outcome(jobs.JobState.COMPLETED, jobs.Reason.NONE, exit_code=0, **usage)


def of_error(error: Exception) -> Outcome:
    """Map a Ray-level failure of the job's task (not of the script) to a state and reason."""
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return Outcome(jobs.JobState.CANCELLED, jobs.Reason.NONE, exit_code=0, signal=15)
    if isinstance(error, ray.exceptions.NodeDiedError):
        return Outcome(jobs.JobState.NODE_FAIL, f"{jobs.Reason.NODE_DOWN}: the node running the job died")
    if isinstance(error, (ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError)):
        return Outcome(jobs.JobState.FAILED, f"{jobs.Reason.SYSTEM_FAILURE}: the Ray worker running the job died")
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[-1][:500]
    return Outcome(jobs.JobState.FAILED, f"{jobs.Reason.SYSTEM_FAILURE}: {first_line}")


def may_leave_processes(error: Exception) -> bool:
    """Whether the job's processes may outlive this Ray-level failure of its task.

    A task cancelled before it started left nothing, and a dead node took its processes with
    it; any other failure may mean the worker died without running the executor's clean-up
    (see conductor.orphans).
    """
    return not isinstance(error, (ray.exceptions.TaskCancelledError, ray.exceptions.NodeDiedError))
