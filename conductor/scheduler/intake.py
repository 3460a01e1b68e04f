"""Queue intake: deliveries become pending jobs, control messages act on jobs, and the pending set
is kept equal to the database's PENDING rows (invariant 1: the database is the truth).

Submission entries stay unacknowledged while their job is pending or running (they are
acknowledged once its end is recorded); entries of jobs that are not pending any more, and
control messages once handled, are acknowledged here.
"""

from __future__ import annotations

import logging
from typing import Callable

from conductor import jobs, logs, queue
from conductor.db.repository import JobRepository
from conductor.scheduler.dispatch import Dispatcher
from conductor.scheduler.ending import Intent
from conductor.scheduler.ledger import Ledger

log = logging.getLogger(__name__)


class Intake:
    """Takes queue entries into the ledger.  ``priority_of`` gives a new pending job its priority."""

    def __init__(self, repo: JobRepository, consumer: queue.QueueConsumer, ledger: Ledger,
                 dispatcher: Dispatcher, priority_of: Callable[[jobs.Job], int]) -> None:
        self._repo, self._consumer, self._ledger = repo, consumer, ledger
        self._dispatcher, self._priority_of = dispatcher, priority_of

    def add(self, job: jobs.Job, entry_ids: set[str]) -> None:
        """A PENDING job joins the pending set (its queue entries are acknowledged when it ends)."""
        self._ledger.add_pending(job, entry_ids, self._priority_of(job))

    async def accept(self, entries: list[queue.Entry]) -> bool:
        """Take in submissions, then carry out control messages; True when a pass is due."""
        submissions = [e for e in entries if e.op == queue.SUBMIT]
        controls = [e for e in entries if e.op != queue.SUBMIT]
        await self._accept_submissions(submissions)
        for entry in controls:
            await self._control(entry)
        await self._consumer.ack([e.entry_id for e in controls])
        return bool(entries)

    async def _accept_submissions(self, entries: list[queue.Entry]) -> None:
        """Add delivered PENDING jobs; acknowledge entries of jobs that are not pending any more."""
        by_job: dict[int, set[str]] = {}
        for entry in entries:
            by_job.setdefault(entry.job_id, set()).add(entry.entry_id)
        unknown = [job_id for job_id in by_job if self._ledger.holder(job_id) is None]
        loaded = {job.id: job for job in self._repo.get_many(unknown)}
        stale: list[str] = []
        for job_id, entry_ids in by_job.items():
            holder = self._ledger.holder(job_id)
            if holder is not None:
                holder.entry_ids |= entry_ids
            elif job_id in loaded and loaded[job_id].state is jobs.JobState.PENDING:
                self.add(loaded[job_id], entry_ids)
            else:  # finished, or delivered twice: it runs once
                stale.extend(entry_ids)
        await self._consumer.ack(stale)

    async def _control(self, entry: queue.Entry) -> None:
        """Carry out one control message; a message about a job that is not here is a no-op."""
        running = self._ledger.running.get(entry.job_id)
        if entry.op in (queue.CANCEL, queue.REQUEUE) and running is not None:
            running.intent = Intent.CANCEL if entry.op == queue.CANCEL else Intent.REQUEUE
            self._dispatcher.stop(running.task, running.intent.value)
        elif entry.op == queue.SIGNAL and running is not None:
            self._dispatcher.signal(running.task, int(entry.arg))
        elif entry.op in (queue.CANCEL, queue.RELOAD, queue.REQUEUE):
            await self._reload(entry.job_id)

    async def _reload(self, job_id: int) -> None:
        """Re-read a job the service changed (held, released, cancelled, requeued)."""
        found = self._repo.get_many([job_id])
        pending = self._ledger.pending.pop(job_id, None)
        entry_ids = pending.entry_ids if pending else set()
        if found and found[0].state is jobs.JobState.PENDING:
            self.add(found[0], entry_ids)
        elif entry_ids:
            await self._consumer.ack(sorted(entry_ids))

    def resync(self) -> tuple[list[str], bool]:
        """Make the pending set the database's PENDING rows, whatever the queue delivered.

        Adopts rows whose queue entry never came (lost with a Redis that restarted empty, or
        never written by an API killed between its commit and its push) and forgets jobs that
        are no longer PENDING.  Returns the entries of forgotten jobs (to acknowledge) and
        whether anything changed.  A later entry of an adopted job is attached to it.
        """
        in_database = set(self._repo.ids_in_state(jobs.JobState.PENDING))
        pending = self._ledger.pending
        gone = [job_id for job_id in pending if job_id not in in_database]
        stale = sorted(entry for job_id in gone for entry in pending.pop(job_id).entry_ids)
        missing = [job_id for job_id in in_database if self._ledger.holder(job_id) is None]
        unreadable: dict[str, list[int]] = {}
        for job in self._repo.get_many(missing):
            if job.state is jobs.JobState.PENDING:
                try:
                    self.add(job, set())
                except Exception as exc:  # one bad row (a malformed --dependency, say) must not stop the rest
                    log.warning("job %s cannot be scheduled: %s: %s", job.id, type(exc).__name__, exc,
                                extra=logs.job(job.id))
                    why = f"cannot schedule the job: {type(exc).__name__}: {exc}"
                    unreadable.setdefault(why, []).append(job.id)
        for why, ids in unreadable.items():
            self._repo.set_pending_reasons({jobs.Reason.SYSTEM_FAILURE: ids}, why)
        if missing or gone:
            log.info("pending set resynchronised with the database: %d adopted, %d dropped", len(missing), len(gone))
        return stale, bool(missing or gone)
