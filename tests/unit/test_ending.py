"""conductor.scheduler.ending.decide: the one place a run's final state is decided."""

from __future__ import annotations

import pytest

from conductor.executor import EndCause, RunReport
from conductor.jobs import Ending, JobState, Reason, Usage
from conductor.scheduler.ending import Intent, Requeue, cancelled, decide

USED = dict(cpu_time_user_s=1.5, cpu_time_system_s=0.5, max_rss_kb=2048)
USAGE = Usage(1.5, 0.5, 2048)


def report(cause: EndCause, exit_code: int | None = 0, signal: int | None = None, detail: str = "") -> RunReport:
    return RunReport(cause, exit_code=exit_code, signal=signal, detail=detail, **USED)


@pytest.mark.parametrize(("given", "expected"), [
    (report(EndCause.EXITED, 0), Ending(JobState.COMPLETED, Reason.NONE, exit_code=0, usage=USAGE)),
    (report(EndCause.EXITED, 3), Ending(JobState.FAILED, Reason.NON_ZERO_EXIT, exit_code=3, usage=USAGE)),
    (report(EndCause.EXITED, 0, 9), Ending(JobState.FAILED, Reason.NON_ZERO_EXIT, exit_code=0, signal=9,
                                           usage=USAGE)),
    (report(EndCause.TIMEOUT, 0, 15), Ending(JobState.TIMEOUT, Reason.TIME_LIMIT, exit_code=0, signal=15,
                                             usage=USAGE)),
    (report(EndCause.OUT_OF_MEMORY, 0, 9), Ending(JobState.OUT_OF_MEMORY, Reason.OUT_OF_MEMORY, exit_code=0,
                                                  signal=9, usage=USAGE)),
    (report(EndCause.STOPPED, 0, 15), Ending(JobState.CANCELLED, Reason.NONE, exit_code=0, signal=15, usage=USAGE)),
    (report(EndCause.LAUNCH_FAILED, None, detail="No such file or directory: /x/out"),
     Ending(JobState.FAILED, Reason.LAUNCH_FAILED, "No such file or directory: /x/out", exit_code=1)),
    (report(EndCause.WORKER_DIED, None), Ending(JobState.FAILED, Reason.SYSTEM_FAILURE,
                                                "the Ray worker running the job died")),
    (report(EndCause.SYSTEM_ERROR, None, detail="RayTaskError: boom"),
     Ending(JobState.FAILED, Reason.SYSTEM_FAILURE, "RayTaskError: boom")),
])
def test_a_run_that_nobody_stopped_ends_as_it_ended(given: RunReport, expected: Ending) -> None:
    assert decide(given) == expected


@pytest.mark.parametrize("cause", list(EndCause))
def test_scancel_wins_over_however_the_run_ended(cause: EndCause) -> None:
    assert decide(report(cause, 3, 9), Intent.CANCEL) == Ending(JobState.CANCELLED, Reason.NONE, exit_code=0,
                                                                 signal=15, usage=USAGE)
    assert cancelled() == Ending(JobState.CANCELLED, Reason.NONE, exit_code=0, signal=15)


@pytest.mark.parametrize("cause", list(EndCause))
def test_a_requested_requeue_requeues_whatever_happened(cause: EndCause) -> None:
    assert decide(report(cause), Intent.REQUEUE, requeue_allowed=False) == Requeue("requeued by request")


def test_a_node_that_left_fails_the_job_or_requeues_it() -> None:
    lost = decide(report(EndCause.STOPPED), Intent.NODE_LOST, requeue_allowed=False, lost_node="b9")
    assert lost == Ending(JobState.NODE_FAIL, Reason.NODE_DOWN, "node b9 left the cluster while the job ran")
    again = decide(report(EndCause.STOPPED), Intent.NODE_LOST, lost_node="b9")
    assert again == Requeue("NODE_FAIL (node b9 left the cluster while the job ran), requeued")
    died = decide(report(EndCause.NODE_DIED, None), requeue_allowed=False)
    assert died == Ending(JobState.NODE_FAIL, Reason.NODE_DOWN, "the node running the job died")


def test_shutdown_requeues_a_stopped_job_or_cancels_it_but_records_a_finished_one() -> None:
    assert decide(report(EndCause.STOPPED, 0, 15), Intent.SHUTDOWN) == Requeue("scheduler stopped")
    assert decide(report(EndCause.STOPPED, 0, 15), Intent.SHUTDOWN, requeue_allowed=False) == cancelled(USAGE)
    finished = decide(report(EndCause.EXITED, 0), Intent.SHUTDOWN)  # it ended by itself as the stop began
    assert finished == Ending(JobState.COMPLETED, Reason.NONE, exit_code=0, usage=USAGE)


def test_a_lost_run_is_requeued_when_allowed_else_node_fail() -> None:
    lost = report(EndCause.LOST, None, detail="scheduler restarted while the job ran")
    assert decide(lost) == Requeue("scheduler restarted while the job ran")
    assert decide(lost, requeue_allowed=False) == Ending(JobState.NODE_FAIL, Reason.NODE_DOWN,
                                                         "scheduler restarted while the job ran")
    assert decide(lost, Intent.CANCEL) == cancelled(USAGE)  # a cancel asked before the restart still counts
