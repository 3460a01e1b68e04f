"""The final state of a job's run, decided in one place: a pure function of how the run ended
(``EndCause``), what the scheduler had asked of it (``Intent``) and whether the job may be requeued.

Slurm's rules, as conductor applies them:

- ``scancel`` wins over everything: CANCELLED with exit code 0:15, whatever the script made of
  its SIGTERM (and whatever else happened meanwhile);
- ``scontrol requeue``: back to PENDING (reason Requeued);
- a node that left while the job ran (or died under it): NODE_FAIL, or PENDING again when the
  job allows requeueing (``--requeue``, the default);
- a scheduler stopping (SHUTDOWN_RUNNING_JOBS=requeue) or restarting and finding the job's task
  gone: PENDING again when the job allows it, else CANCELLED (stopped) or NODE_FAIL (lost);
- otherwise the run's own end: COMPLETED, FAILED (exit code N:0, or 0:N for signal N), TIMEOUT,
  OUT_OF_MEMORY, or FAILED with JobLaunchFailure / SystemFailure when it never ran or Ray failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from conductor.executor import EndCause, RunReport
from conductor.jobs import Ending, JobState, Reason, Usage

class Intent(str, Enum):
    """What the scheduler asked of a running job before its run ended."""

    NONE = "none"
    CANCEL = "cancel"  #: scancel
    REQUEUE = "requeue"  #: scontrol requeue
    SHUTDOWN = "shutdown"  #: the scheduler stops (SHUTDOWN_RUNNING_JOBS=requeue, or wait's deadline)
    NODE_LOST = "node_lost"  #: one of its nodes left the cluster


@dataclass(frozen=True)
class Requeue:
    """The job goes back to PENDING (reason Requeued, restart count + 1), with why."""

    message: str


def decide(report: RunReport, intent: Intent = Intent.NONE, *, requeue_allowed: bool = True,
           lost_node: str = "") -> Ending | Requeue:
    """The recorded end of one run: an Ending (final state) or a Requeue."""
    usage = Usage(report.cpu_time_user_s, report.cpu_time_system_s, report.max_rss_kb)
    if intent is Intent.CANCEL:
        return cancelled(usage)
    if intent is Intent.REQUEUE:
        return Requeue("requeued by request")
    if intent is Intent.NODE_LOST or report.cause is EndCause.NODE_DIED:
        message = (f"node {lost_node} left the cluster while the job ran" if lost_node
                   else "the node running the job died")
        if requeue_allowed:
            return Requeue(f"NODE_FAIL ({message}), requeued")
        return Ending(JobState.NODE_FAIL, Reason.NODE_DOWN, message)
    if report.cause is EndCause.LOST:
        if requeue_allowed:
            return Requeue(report.detail)
        return Ending(JobState.NODE_FAIL, Reason.NODE_DOWN, report.detail)
    if intent is Intent.SHUTDOWN and report.cause is not EndCause.EXITED:
        return Requeue("scheduler stopped") if requeue_allowed else cancelled(usage)
    return _own_end(report, usage)


def cancelled(usage: Usage = Usage()) -> Ending:
    """scancel's record: CANCELLED, exit code 0:15 (the SIGTERM it sent), whatever the script did with it."""
    return Ending(JobState.CANCELLED, Reason.NONE, exit_code=0, signal=15, usage=usage)


def _own_end(report: RunReport, usage: Usage) -> Ending:
    """How the run ended by itself (nobody asked it to stop)."""
    cause = report.cause
    if cause is EndCause.LAUNCH_FAILED:
        return Ending(JobState.FAILED, Reason.LAUNCH_FAILED, report.detail, exit_code=1)
    if cause is EndCause.STOPPED:
        return cancelled(usage)
    if cause is EndCause.OUT_OF_MEMORY:
        return Ending(JobState.OUT_OF_MEMORY, Reason.OUT_OF_MEMORY, exit_code=0, signal=report.signal, usage=usage)
    if cause is EndCause.TIMEOUT:
        return Ending(JobState.TIMEOUT, Reason.TIME_LIMIT, exit_code=report.exit_code, signal=report.signal,
                      usage=usage)
    if cause is EndCause.WORKER_DIED:
        return Ending(JobState.FAILED, Reason.SYSTEM_FAILURE, "the Ray worker running the job died")
    if cause is EndCause.SYSTEM_ERROR:
        return Ending(JobState.FAILED, Reason.SYSTEM_FAILURE, report.detail)
    if report.signal or report.exit_code:
        return Ending(JobState.FAILED, Reason.NON_ZERO_EXIT, exit_code=report.exit_code, signal=report.signal,
                      usage=usage)
    return Ending(JobState.COMPLETED, Reason.NONE, exit_code=0, usage=usage)
