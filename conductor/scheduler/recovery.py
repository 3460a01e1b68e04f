"""What a freshly started scheduler does with the RUNNING rows it finds: adopt, record, or end them.

A job's task belongs to the keeper of its first node, not to the scheduler, so it outlives a
scheduler that crashed, was killed or was stopped for an upgrade (invariant 7).  At start, for
each RUNNING row:

- the keeper still runs that attempt: the job is adopted (a cancel asked meanwhile is delivered);
- the keeper holds how it ended while no scheduler ran: that end is recorded (``ending.decide``);
- no keeper knows it (the keeper restarted, its node is gone, or the job ran under a scheduler
  without keepers): whatever its script left is reaped on its node, then it is requeued (or ends
  NODE_FAIL, CANCELLED when a cancel was asked) with a reason that says why.

Allocation rows of jobs that no longer run are released, and the pending set is loaded from the
PENDING rows afterwards (``intake.resync``).
"""

from __future__ import annotations

import logging

from conductor import jobs
from conductor.db.repository import JobRepository
from conductor.executor import EndCause, RunReport
from conductor.keeper.handle import name_of
from conductor.keeper.protocol import KeeperState
from conductor.resources import Allocation
from conductor.scheduler import ending
from conductor.scheduler.dispatch import Dispatcher, Task
from conductor.scheduler.ledger import Ledger, RunningJob

log = logging.getLogger(__name__)

LOST_ON_RESTART = "scheduler restarted while the job ran"


async def recover(repo: JobRepository, ledger: Ledger, dispatcher: Dispatcher) -> list[RunningJob]:
    """Adopt, record or end every RUNNING row; returns the adopted jobs (not yet in the ledger)."""
    states: dict[str, KeeperState] = {}
    for node_id in dispatcher.keeper_nodes():
        try:
            states[node_id] = await dispatcher.state(node_id)
        except Exception as exc:  # noqa: BLE001 - restarting: its jobs are treated as lost below
            log.warning("the keeper on %s did not answer: %s", node_id, exc)
    allocations = {allocation.job_id: allocation for allocation in repo.unreleased_allocations()}
    adopted, seen = [], set()
    for job in repo.get_many(repo.ids_in_state(jobs.JobState.RUNNING)):
        allocation = allocations.get(job.id)
        state = states.get(allocation.first.ray_node_id) if allocation else None
        running = _adopted(job, allocation, state, dispatcher)
        if running is not None:
            adopted.append(running)
            seen.add(running.task.token)
        else:
            seen |= await _end(job, allocation, state, ledger, repo, dispatcher)
    for node_id, state in states.items():  # ends of jobs recorded already, whose forget was lost
        dispatcher.forget(node_id, [e.token for e in state.ended if e.token not in seen])
    released = repo.release_orphaned_allocations()
    if released:
        log.warning("released %d allocation rows of jobs that no longer run", released)
    if adopted:
        log.info("adopted %d running jobs from their keepers", len(adopted))
    return adopted


def _adopted(job: jobs.Job, allocation: Allocation | None, state: KeeperState | None,
             dispatcher: Dispatcher) -> RunningJob | None:
    """The job as the ledger will hold it, when its keeper still runs this attempt."""
    token = state.running.get(job.id) if state is not None else None
    if allocation is None or token is None or not _attempt_of(job, token):
        return None
    intent = ending.Intent.CANCEL if job.cancel_requested else ending.Intent.NONE
    task = Task(token, allocation.first.ray_node_id, state.info.incarnation)
    if intent is ending.Intent.CANCEL:
        dispatcher.stop(task, intent.value)  # asked while no scheduler ran: deliver it now
    started_s = job.start_time.timestamp() if job.start_time else 0.0
    return RunningJob(job, allocation, set(), task=task, intent=intent, started_s=started_s)


async def _end(job: jobs.Job, allocation: Allocation | None, state: KeeperState | None, ledger: Ledger,
               repo: JobRepository, dispatcher: Dispatcher) -> set[str]:
    """Record the end of a job its keeper does not run any more; the tokens that accounts for."""
    asked = ending.Intent.CANCEL if job.cancel_requested else ending.Intent.NONE
    node_id = allocation.first.ray_node_id if allocation else ""
    ended = next((e for e in state.ended if e.job_id == job.id and _attempt_of(job, e.token)), None) if state else None
    if ended is not None:  # it ended while no scheduler ran: its true end
        if ended.report.cause in (EndCause.WORKER_DIED, EndCause.SYSTEM_ERROR):
            await dispatcher.reap(job, node_id)
        intent = ending.Intent(ended.intent) if ended.intent != ending.Intent.NONE.value else asked
        record(repo, job.id, ending.decide(ended.report, intent, requeue_allowed=job.spec.requeue))
        dispatcher.forget(node_id, [ended.token])
        return {ended.token}
    await dispatcher.reap(job, node_id)  # before requeueing: attempts never overlap
    report = RunReport(EndCause.LOST, detail=f"{LOST_ON_RESTART}; {_why_lost(allocation, state, ledger)}")
    if allocation is not None:
        dispatcher.remove_placement_group(job.id)
    record(repo, job.id, ending.decide(report, asked, requeue_allowed=job.spec.requeue))
    return set()


def _why_lost(allocation: Allocation | None, state: KeeperState | None, ledger: Ledger) -> str:
    if allocation is None:
        return "it held no allocation"
    node = allocation.first
    if node.ray_node_id not in ledger.nodes:
        return f"node {node.name} is gone"
    if state is None:
        return f"keeper {name_of(node.name)} did not answer"
    return f"keeper {name_of(node.name)} does not know it (the keeper restarted, or the job ran without one)"


def _attempt_of(job: jobs.Job, token: str) -> bool:
    """Whether ``token`` is an attempt of the job's current run (``<id>-<restart count>-...``)."""
    parts = token.split("-")
    return len(parts) >= 3 and parts[0] == str(job.id) and parts[1] == str(job.restart_count)


def record(repo: JobRepository, job_id: int, decision: jobs.Ending | ending.Requeue) -> jobs.Job | None:
    """Store a decided end: the final state, or back to PENDING (then the job as it is now)."""
    if isinstance(decision, ending.Requeue):
        return repo.requeue_running(job_id, decision.message)
    repo.finish_job(job_id, decision)
    return None
