"""What a freshly started scheduler does with what the last one left: reap, then reconcile.

A fresh actor owns no task (Ray ended its predecessor's with it): RUNNING rows are orphans.
First their leftover processes are killed on their nodes, so that an attempt never overlaps
the next one; then each row ends as ``ending.decide`` says for a LOST run (requeued, CANCELLED
if a cancel was asked, else NODE_FAIL), and allocation rows of jobs that no longer run are
released.  The pending set is then loaded from the PENDING rows (``intake.resync``).
"""

from __future__ import annotations

import logging

from conductor import jobs
from conductor.db.repository import JobRepository
from conductor.executor import EndCause, RunReport
from conductor.scheduler import ending
from conductor.scheduler.dispatch import Dispatcher
from conductor.scheduler.ledger import Ledger

log = logging.getLogger(__name__)

LOST_ON_RESTART = "scheduler restarted while the job ran"


def orphaned_attempts(repo: JobRepository, ledger: Ledger, running: list[jobs.Job]) -> list[tuple[jobs.Job, str]]:
    """The ``running`` jobs with the live Ray node their attempt ran on.

    A node that is gone took its processes with it (and a task cannot be pinned to it).
    """
    first_node = {allocation.job_id: allocation.first.ray_node_id for allocation in repo.unreleased_allocations()}
    return [(job, first_node[job.id]) for job in running if first_node.get(job.id) in ledger.nodes]


async def reap_and_reconcile(repo: JobRepository, ledger: Ledger, dispatcher: Dispatcher) -> None:
    """Kill the orphans' processes, then record each orphan's end and release stale allocations."""
    running = repo.get_many(repo.ids_in_state(jobs.JobState.RUNNING))
    await dispatcher.reap(orphaned_attempts(repo, ledger, running))  # before requeueing: attempts never overlap
    for job in running:
        intent = ending.Intent.CANCEL if job.cancel_requested else ending.Intent.NONE
        decision = ending.decide(RunReport(EndCause.LOST, detail=LOST_ON_RESTART), intent,
                                 requeue_allowed=job.spec.requeue)
        record(repo, job.id, decision)
    released = repo.release_orphaned_allocations()
    if released:
        log.warning("released %d allocation rows of jobs that no longer run", released)


def record(repo: JobRepository, job_id: int, decision: jobs.Ending | ending.Requeue) -> jobs.Job | None:
    """Store a decided end: the final state, or back to PENDING (then the job as it is now)."""
    if isinstance(decision, ending.Requeue):
        return repo.requeue_running(job_id, decision.message)
    repo.finish_job(job_id, decision)
    return None
