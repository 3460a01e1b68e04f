"""The scheduler actor: one detached, named Ray actor per cluster (``conductor-scheduler``).

It consumes the queue, keeps pending jobs in (priority, submit time) order, and on every event
(a delivery, a finished job, a node change) runs one pass of the policy.  A job that fits is
started in one transaction (RUNNING + allocation rows) and then launched as a Ray task pinned
to its node(s), asking Ray for exactly the allocation, so Ray's accounting and the allocation
rows agree (invariant 3).  When the task ends, one transaction records the final state and
releases the allocation, and only then is the queue entry acknowledged.

This module owns the lifecycle (start, stop, idle), the loops (queue, nodes and lease) and
the pass; its parts own the rest: ``ledger`` (the books), ``intake`` (queue entries),
``dispatch`` (every Ray call for jobs), ``recovery`` (after a restart), ``ending`` (the final
state), ``nodes`` (discovery).  Everything runs on the actor's event loop; a pass never
awaits, so passes do not interleave.  The job path does not poll: the queue read blocks and
task results are awaited.  Only the node list is refreshed on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

from conductor import eligibility, jobs, policy, queue
from conductor.config import Settings
from conductor.db.lease import SchedulerLease
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine
from conductor.exceptions import ConductorError, SchedulerBusy, ServiceUnavailable
from conductor.resources import Allocation
from conductor.scheduler import ending, nodes, recovery
from conductor.scheduler.dispatch import WARM_TIMEOUT_S, Dispatcher, may_leave_processes
from conductor.scheduler.handle import Status
from conductor.executor import EndCause
from conductor.scheduler.intake import Intake
from conductor.scheduler.priorities import Priorities
from conductor.scheduler.ledger import Ledger, PendingJob, RunningJob

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Most queue entries taken in one read.
READ_BATCH = 1000
#: How often the node list is compared with Ray's (nodes joining or leaving) and the lease checked.
NODE_REFRESH_S = 2.0
#: When a job's Ray worker dies, how long to watch whether its node died too (then NODE_FAIL,
#: else FAILED).  Ray marks a node dead after its health checks fail.
NODE_LOSS_GRACE_S = 5.0
#: Back-off bounds when the database or Redis is unavailable.
RETRY_MIN_S, RETRY_MAX_S = 0.1, 5.0
#: How often the pending set is compared with the database's PENDING rows (a safety net, not
#: the job path: entries wake the scheduler; this finds rows whose entry was lost or never written).
PENDING_RESYNC_S = 10.0
#: Ends of a job's task that Ray reports (not the executor): its node may have died with it.
RAY_FAILURES = frozenset({EndCause.WORKER_DIED, EndCause.NODE_DIED, EndCause.SYSTEM_ERROR})


class Scheduler:
    """The actor's body.  Use ``conductor.scheduler.handle.get_or_create`` for the cluster's one instance."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level)
        self._settings = settings
        self._started = False
        self._ledger = Ledger()
        self._priorities = Priorities(settings, self._ledger)
        self._down_partitions = {p.name for p in settings.partitions if p.state == "DOWN"}
        self._pass_scheduled = False
        self._begin_timer: asyncio.TimerHandle | None = None
        self._begin_timer_at: datetime | None = None
        self._stopping = False
        self._last_pass_started = False
        self._queue_drained = False
        self._idle = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._watchers: set[asyncio.Task] = set()
        self._lease_is_lost = False  # another scheduler took the database: record nothing more

    # -- actor methods -------------------------------------------------------------------

    async def start(self) -> Status:
        """Connect, reconcile and begin consuming; idempotent.

        ``started_now`` in the reply tells the caller whether this call started it (the
        caller then owns it and stops it on exit) or found it running.  A start that fails
        (database down) leaves the actor unstarted, so the next call tries again.
        """
        async with self._start_lock:
            started_now = not self._started
            if started_now:
                await self._boot()
                self._started = True
        return replace(self.describe(), started_now=started_now)

    async def _boot(self) -> None:
        engine = make_engine(self._settings.effective_database_url)
        self._lease = SchedulerLease(engine)
        self._lease.acquire()  # before reconciling: another scheduler's RUNNING jobs are not orphans
        self._lease_is_lost = False
        try:
            self._repo = JobRepository(engine)
            self._consumer = queue.make_consumer(self._settings, engine, f"scheduler-{self._settings.node_name}")
        except Exception:
            self._lease.release()
            raise
        try:
            await self._boot_holding_lease()
        except BaseException:  # e.g. the database failed mid-reconcile: the next start() must find the lease free
            await self._consumer.close()
            self._lease.release()
            raise

    async def _boot_holding_lease(self) -> None:
        """The rest of the start, once the lease and the queue consumer are this actor's."""
        import ray

        self._local_node_id = ray.get_runtime_context().get_node_id()
        self._dispatcher = Dispatcher(self._settings.kill_wait_s)
        self._intake = Intake(self._repo, self._consumer, self._ledger, self._dispatcher, self._priorities.of)
        warming = self._dispatcher.warm_up(self._settings.worker_concurrency)
        self._refresh_nodes()
        self._priorities.load_usage(self._repo)
        await recovery.reap_and_reconcile(self._repo, self._ledger, self._dispatcher)
        self._resync_pending()
        self._stopping = False
        self._tasks = [asyncio.create_task(self._consume_loop()), asyncio.create_task(self._node_loop())]
        self._request_pass()
        await asyncio.wait([asyncio.ensure_future(ref) for ref in warming], timeout=WARM_TIMEOUT_S)

    def describe(self) -> Status:
        """A summary for banners and health checks."""
        return Status(worker_concurrency=self._settings.worker_concurrency,
                      nodes=tuple(self._ledger.nodes.values()), used=self._ledger.used(),
                      pending=len(self._ledger.pending), running=len(self._ledger.running),
                      queue=queue.describe(self._settings))

    async def wait_idle(self) -> Status:
        """Return once the queue is drained and no job runs or can start (WORKER_BURST)."""
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()
        return self.describe()

    async def stop(self, running_jobs: str = "requeue", wait_s: float = 0.0) -> Status:
        """Stop consuming and dispatching, then end running jobs as ``running_jobs`` says.

        ``requeue``: terminate their processes and requeue them (CANCELLED when the job's
        ``requeue`` is false).  ``wait``: let them finish for up to ``wait_s`` seconds, then
        treat those still running as ``requeue`` does.  Control messages that arrive while
        waiting stay in the queue for the next start.  Afterwards the actor is unstarted:
        a later ``start`` boots it again.
        """
        async with self._start_lock:
            if not self._started:
                return self.describe()
            self._stopping = True  # no pass runs any more
            for task in self._tasks:
                task.cancel()
            if running_jobs == "wait":
                await self._await_running(wait_s)
            for running in self._ledger.running.values():
                if running.intent is ending.Intent.NONE:
                    running.intent = ending.Intent.SHUTDOWN
                self._dispatcher.cancel(running.task)
            await self._await_running(self._settings.kill_wait_s + 10)
            await self._consumer.close()
            self._lease.release()
            self._ledger.pending.clear()
            self._started = False
        return self.describe()

    async def _await_running(self, timeout_s: float) -> None:
        """Wait until no job runs (each one's end recorded), or ``timeout_s`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._ledger.running and self._watchers and loop.time() < deadline:
            await asyncio.wait(set(self._watchers), timeout=min(1.0, deadline - loop.time()))

    # -- the queue -----------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        delay = RETRY_MIN_S
        loop = asyncio.get_running_loop()
        resync_at = loop.time() + PENDING_RESYNC_S
        while True:
            try:
                if loop.time() >= resync_at:  # the safety net for entries that never came (invariant 1)
                    self._resync_pending()
                    resync_at = loop.time() + PENDING_RESYNC_S
                entries = await self._consumer.read(READ_BATCH, queue.DEFAULT_BLOCK_S)
                if await self._intake.accept(entries):
                    self._request_pass()
                delay = RETRY_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any failure; entries come back
                self._consumer.rewind()
                resync_at = loop.time()  # Redis may come back empty: resynchronise before the next read
                if isinstance(exc, ServiceUnavailable):
                    log.warning("queue hand-off failed (%s); retrying in %.1f s", exc, delay)
                else:
                    log.exception("queue hand-off failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._queue_drained = not entries
            self._wake_idle_waiters()

    def _resync_pending(self) -> None:
        stale, changed = self._intake.resync()
        if stale:
            self._spawn(self._retry(lambda: self._consumer.ack(stale)))
        if changed:
            self._request_pass()

    # -- the pass ------------------------------------------------------------------------

    def _request_pass(self) -> None:
        """Run one pass soon; events arriving together share it.  None once stopping."""
        if not self._pass_scheduled and not self._stopping:
            self._pass_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_pass)

    def _run_pass(self) -> None:
        self._pass_scheduled = False
        try:
            self._schedule()
        except ServiceUnavailable as exc:
            log.warning("scheduling pass failed (%s); retrying", exc)
            asyncio.get_running_loop().call_later(RETRY_MAX_S / 5, self._request_pass)
        except Exception:  # the loop must survive anything a pass meets; the job rows stay PENDING
            log.exception("scheduling pass failed")
            asyncio.get_running_loop().call_later(RETRY_MAX_S, self._request_pass)
        self._wake_idle_waiters()

    def _schedule(self) -> None:
        self._priorities.refresh()
        waiting = self._blocked_reasons()
        ledger = self._ledger
        plan = policy.plan_pass(
            ledger.candidates(waiting), list(ledger.nodes.values()), self._settings.worker_concurrency
            - len(ledger.running), used=ledger.used(), array_running=ledger.array_running(),
            running=ledger.holds(self._settings.kill_wait_s), now_s=time.time(),
            backfill=self._settings.scheduler_backfill, reserve_depth=self._settings.backfill_max_job_test)
        self._last_pass_started = bool(plan.starts)
        if plan.starts:
            self._start(plan.starts)
        self._record_reasons({**waiting, **plan.reasons})

    def _blocked_reasons(self) -> dict[int, jobs.Reason]:
        """Pending jobs that may not start yet whatever the resources: held, --begin, dependency, partition down."""
        pending = self._ledger.pending
        found = eligibility.check([(p.job, p.dependency) for p in pending.values()], self._repo,
                                  datetime.now(timezone.utc))
        self._wake_at(found.next_begin)
        for job_id in found.cancelled:  # --kill-on-invalid-dep: CANCELLED now, no longer pending
            gone = pending.pop(job_id)
            self._spawn(self._retry(lambda entries=sorted(gone.entry_ids): self._consumer.ack(entries)))
        if found.cancelled:
            self._request_pass()  # another pass: the jobs that depend on these may be decided now
        blocked = {job_id: reason for job_id, reason in found.reasons.items() if job_id in pending}
        for p in pending.values():
            if p.job.spec.partition in self._down_partitions and p.job.id not in blocked:
                blocked[p.job.id] = jobs.Reason.PARTITION_DOWN
        return blocked

    def _start(self, allocations: list[Allocation]) -> None:
        started = self._repo.start_jobs(allocations)
        for allocation in allocations:
            pending = self._ledger.pending.pop(allocation.job_id)
            if allocation.job_id in started:
                self._launch(pending, allocation)
            else:  # no longer PENDING in the database (cancelled meanwhile): forget it
                self._spawn(self._consumer.ack(sorted(pending.entry_ids)))

    def _launch(self, pending: PendingJob, allocation: Allocation) -> None:
        """Launch the job's task; if Ray refuses it, the job fails with the reason (never stuck RUNNING)."""
        running = self._ledger.running[allocation.job_id] = RunningJob(pending.job, allocation, pending.entry_ids)
        try:
            running.task = self._dispatcher.launch(pending.job, allocation)
        except Exception as error:  # a Ray-side refusal is data on the job row
            log.exception("job %s could not be launched", allocation.job_id)
            ended = jobs.Ending(jobs.JobState.FAILED, jobs.Reason.LAUNCH_FAILED, f"{type(error).__name__}: {error}",
                                exit_code=1)
            self._spawn(self._record_end(running, ended))
            return
        self._spawn(self._watch(running))

    def _record_reasons(self, reasons: dict[int, jobs.Reason]) -> None:
        changed: dict[jobs.Reason, list[int]] = {}
        for job_id, reason in reasons.items():
            pending = self._ledger.pending.get(job_id)
            if pending is not None and pending.reason != reason:
                changed.setdefault(reason, []).append(job_id)
        if changed:
            self._repo.set_pending_reasons(changed)
            for reason, ids in changed.items():
                for job_id in ids:
                    self._ledger.pending[job_id].reason = reason

    # -- timers ----------------------------------------------------------------------------

    def _wake_at(self, when: datetime | None) -> None:
        """Run a pass when the earliest --begin time comes."""
        if when is None or (self._begin_timer is not None and self._begin_timer_at <= when):
            return
        if self._begin_timer is not None:
            self._begin_timer.cancel()
        delay_s = max(0.0, (when - datetime.now(timezone.utc)).total_seconds()) + 0.01
        self._begin_timer, self._begin_timer_at = asyncio.get_running_loop().call_later(delay_s, self._begin_due), when

    def _begin_due(self) -> None:
        self._begin_timer = None
        self._request_pass()

    # -- ending ----------------------------------------------------------------------------

    async def _watch(self, running: RunningJob) -> None:
        """Await the job's task, then record its end as ``ending.decide`` says."""
        report = await self._dispatcher.report(running.task)
        if report.cause in RAY_FAILURES and running.intent is ending.Intent.NONE:
            lost = await nodes.lost_node_of(running.allocation, NODE_LOSS_GRACE_S)
            if lost:  # the worker died with its node: NODE_FAIL, not a failure of the job
                self._refresh_nodes()  # nothing more may be placed on it
                running.intent, running.lost_node = ending.Intent.NODE_LOST, lost
        if may_leave_processes(report) and running.intent is not ending.Intent.NODE_LOST:
            await self._dispatcher.reap([(running.job, running.allocation.first.ray_node_id)])  # e.g. SIGKILLed
        decision = ending.decide(report, running.intent, requeue_allowed=running.job.spec.requeue,
                                 lost_node=running.lost_node)
        await self._record_end(running, decision)

    async def _record_end(self, running: RunningJob, decision: jobs.Ending | ending.Requeue) -> None:
        """Store the end, give back the allocation, charge fair share, then requeue or acknowledge."""
        job_id = running.job.id
        if self._lease_is_lost:  # the rows belong to the scheduler that holds the lease now
            del self._ledger.running[job_id]
            return
        requeued = await self._retry(lambda: recovery.record(self._repo, job_id, decision))
        self._dispatcher.release(running.task)
        self._priorities.charge(running.job.spec.account,
                                running.allocation.total.cpus * max(0.0, time.time() - running.started_s))
        del self._ledger.running[job_id]
        if requeued is not None:
            self._intake.add(requeued, running.entry_ids)
        else:
            await self._retry(lambda: self._consumer.ack(sorted(running.entry_ids)))
        self._request_pass()

    async def _retry(self, action: Callable[[], T | Awaitable[T]]) -> T:
        """Run ``action`` until the database/queue accepts it, backing off meanwhile; return its result."""
        delay = RETRY_MIN_S
        while True:
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    result = await result
                return result  # type: ignore[return-value]
            except ServiceUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
            except Exception:  # keep the job's slot accounted for; say loudly why it is stuck
                log.exception("recording failed; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    # -- nodes and the lease ---------------------------------------------------------------

    async def _node_loop(self) -> None:
        while True:
            await asyncio.sleep(NODE_REFRESH_S)
            try:
                self._lease.verify()
            except SchedulerBusy:
                self._lease_lost()
                return
            except Exception as exc:  # the database is down: the lease is checked again next time
                log.warning("could not check the scheduler lease: %s", exc)
            try:
                if self._refresh_nodes():
                    self._request_pass()
            except ConductorError as exc:
                log.warning("node refresh failed: %s", exc)
            except Exception:  # a GCS hiccup must not end node discovery for good
                log.exception("node refresh failed")

    def _lease_lost(self) -> None:
        """Another scheduler holds the database now: stop dispatching and end this one's tasks.

        Their rows are the other scheduler's to reconcile (requeue or NODE_FAIL); nothing more is
        recorded from here, so no job is recorded twice.
        """
        log.critical("the scheduler lease was lost to another scheduler: stopping, cancelling %d running tasks",
                     len(self._ledger.running))
        self._stopping = self._lease_is_lost = True
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for running in self._ledger.running.values():
            running.intent = ending.Intent.SHUTDOWN
            self._dispatcher.cancel(running.task)
        self._started = False

    def _refresh_nodes(self) -> bool:
        """Take Ray's alive nodes; record a change; end jobs of nodes that left NODE_FAIL."""
        found = nodes.alive_nodes(self._settings.partitions, local_node_id=self._local_node_id,
                                  local_name=self._settings.node_name)
        if not self._ledger.replace_nodes(found):
            return False
        self._repo.replace_nodes(found)
        for running in self._ledger.running.values():
            lost = self._ledger.lost_nodes(running)
            if lost and running.intent is ending.Intent.NONE:
                log.warning("job %s: node %s left the cluster; ending it NODE_FAIL", running.job.id, lost[0])
                running.intent, running.lost_node = ending.Intent.NODE_LOST, lost[0]
                self._dispatcher.cancel(running.task)
        return True

    # -- helpers -------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _is_idle(self) -> bool:
        if not self._started or not self._queue_drained or self._ledger.running or self._pass_scheduled:
            return False
        return not self._ledger.pending or not self._last_pass_started

    def _wake_idle_waiters(self) -> None:
        if self._is_idle():
            self._idle.set()
