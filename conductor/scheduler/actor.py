"""The scheduler actor: one detached, named Ray actor per cluster (``conductor-scheduler``).

It consumes the queue, keeps pending jobs in (priority, submit time) order, and on every event
(a delivery, a finished job, a node change) runs one pass of the policy.  A job that fits is
started in one transaction (RUNNING + allocation rows) and then launched by the keeper of its
first node as a Ray task pinned to its node(s), asking Ray for exactly the allocation, so Ray's
accounting and the allocation rows agree (invariant 3).  Each keeper's ends come back in
batches; one transaction records a batch's final states and releases their allocations, and
only then are their queue entries acknowledged.  The jobs belong to the keepers, so they
outlive this actor (invariant 7): a new scheduler adopts them (``recovery``).

This module owns the lifecycle (start, stop, idle), the loops (queue, nodes and lease, one
collector per keeper) and the pass; its parts own the rest: ``ledger`` (the books), ``intake``
(queue entries), ``dispatch`` (the keepers), ``recovery`` (after a restart), ``ending`` (the
final state), ``nodes`` (discovery).  Everything runs on the actor's event loop; a pass never
awaits, so passes do not interleave.  The job path does not poll: the queue read blocks and
each collector long-polls its keeper.  Only the node list is refreshed on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

from conductor import eligibility, jobs, logs, policy, queue
from conductor.config import Settings
from conductor.db.lease import SchedulerLease
from conductor.db.repository import JobRepository
from conductor.db.session import make_engine
from conductor.exceptions import ConductorError, SchedulerBusy, ServiceUnavailable
from conductor.resources import Allocation
from conductor.executor import EndCause, RunReport
from conductor.keeper.handle import name_of as keeper_name
from conductor.keeper.protocol import Ended, Launch
from conductor.scheduler import demand, ending, nodes, recovery, retirement
from conductor.scheduler.dispatch import Dispatcher, KeeperMismatch
from conductor.scheduler.handle import Status
from conductor.scheduler.intake import Intake
from conductor.scheduler.priorities import Priorities
from conductor.scheduler.telemetry import EXPORT_EVERY_S, Telemetry
from conductor.scheduler.ledger import Ledger, RunningJob

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
#: How long a collector's call waits for its keeper to report an end (a safety net, not a poll period).
ENDED_WAIT_S = 30.0
#: How long a keeper that failed a call has to answer again before its jobs are declared lost.
KEEPER_RETURN_S = 30.0
#: The period of the timer whose lateness is the event loop's lag.
LAG_PROBE_S = 1.0
#: Least time between two computations of the autoscaler's demand (passes come far more often).
DEMAND_PERIOD_S = 1.0
#: A pass run for an event is quick (policy.plan_pass ``depth``, as Slurm's default_queue_depth):
#: it reads the head of the pending order and stops once nothing more can start.  A full pass,
#: which gives every pending job its reason, runs at most every FULL_PASS_MIN_S, and no more often
#: than keeps its own cost under 1/FULL_PASS_COST_RATIO of the scheduler's time.
QUICK_PASS_DEPTH = 1000
FULL_PASS_MIN_S = 1.0
FULL_PASS_COST_RATIO = 20
#: Jobs a full pass decides past the point where it stopped (new jobs, mostly); more wait for the next pass.
FULL_PASS_SETTLE_MAX = 5000


class Scheduler:
    """The actor's body.  Use ``conductor.scheduler.handle.get_or_create`` for the cluster's one instance."""

    def __init__(self, settings: Settings) -> None:
        logs.configure(settings.log_level, settings.log_format)
        self._settings = settings
        self._telemetry = Telemetry()
        self._started = False
        self._ledger = Ledger()
        self._priorities = Priorities(settings, self._ledger)
        self._down_partitions = {p.name for p in settings.partitions if p.state == "DOWN"}
        self._pass_scheduled = False
        self._begin_timer: asyncio.TimerHandle | None = None
        self._begin_timer_at: datetime | None = None
        self._stopping = False
        self._last_pass_started = False
        self._last_pass_complete = True
        self._last_pass_full = True
        self._next_full_pass_s = 0.0  # monotonic: when a pass may be a full one again
        self._nodes_read_by_full_pass: frozenset = frozenset()  # the ready nodes of the last full pass over every job
        self._full_pass_timer: asyncio.TimerHandle | None = None
        self._queue_drained = False
        self._idle = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._collectors: dict[str, asyncio.Task] = {}  # ray node id -> the loop reading its keeper's ends
        self._watchers: set[asyncio.Task] = set()
        self._lease_is_lost = False  # another scheduler took the database: record nothing more
        self._telemetry_task: asyncio.Task | None = None
        self._requests = demand.Requests()  # what the autoscaler was last asked for
        self._demand_at = 0.0
        self._demand_in_flight = False

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
        self._dispatcher = Dispatcher(self._settings)
        self._intake = Intake(self._repo, self._consumer, self._ledger, self._dispatcher, self._priorities.of)
        self._retirement = retirement.Retirement(self._settings.keeper_idle_timeout_s)
        self._head_ids = nodes.head_ids() | {self._local_node_id}  # their keepers are never retired
        self._refresh_nodes()
        try:
            await self._dispatcher.ensure_keepers(list(self._ledger.nodes.values()), all_must_answer=True)
        except KeeperMismatch as exc:
            raise ConductorError(str(exc)) from None
        for running in await recovery.recover(self._repo, self._ledger, self._dispatcher):
            self._ledger.running[running.job.id] = running
        self._priorities.load_usage(self._repo)
        self._resync_pending()
        self._stopping = False
        if self._telemetry_task is None:  # outlives stop/start: the figures count since the actor began
            self._telemetry.export_to_ray()
            self._telemetry_task = asyncio.create_task(self._telemetry_loop())
        self._tasks = [asyncio.create_task(self._consume_loop()), asyncio.create_task(self._node_loop())]
        self._start_collectors()
        self._request_pass()

    def describe(self) -> Status:
        """A summary for banners and health checks."""
        keepers = tuple(info for node_id in self._dispatcher.keeper_nodes()
                        if (info := self._dispatcher.info(node_id)) is not None) if self._started else ()
        return Status(worker_concurrency=self._settings.worker_concurrency,
                      nodes=tuple(self._ledger.nodes.values()), used=self._ledger.used(),
                      pending=len(self._ledger.pending), running=len(self._ledger.running),
                      queue=queue.describe(self._settings), keepers=keepers, figures=self._telemetry.figures())

    async def wait_idle(self) -> Status:
        """Return once the queue is drained and no job runs or can start (WORKER_BURST)."""
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()
        return self.describe()

    async def stop(self, running_jobs: str = "requeue", wait_s: float = 0.0) -> Status:
        """Stop consuming and dispatching, then leave or end running jobs as ``running_jobs`` says.

        ``keep``: they go on under their keepers; the next scheduler adopts them.  ``requeue``:
        their processes are terminated and they are requeued (CANCELLED when the job's
        ``requeue`` is false).  ``wait``: they may finish for up to ``wait_s`` seconds, then
        those still running are treated as ``requeue`` treats them.  Control messages that
        arrive meanwhile stay in the queue for the next start.  Afterwards the actor is
        unstarted: a later ``start`` boots it again.
        """
        async with self._start_lock:
            if not self._started:
                return self.describe()
            self._stopping = True  # no pass runs any more
            for task in self._tasks:
                task.cancel()
            if running_jobs == "wait":
                await self._await_running(wait_s)
            if running_jobs != "keep":
                for running in self._ledger.running.values():
                    if running.intent is ending.Intent.NONE:
                        running.intent = ending.Intent.SHUTDOWN
                    self._dispatcher.stop(running.task, running.intent.value)
                await self._await_running(self._settings.kill_wait_s + 10)
            for collector in self._collectors.values():
                collector.cancel()
            self._collectors.clear()
            status = self.describe()
            await self._consumer.close()
            self._lease.release()
            self._ledger.pending.clear()
            self._ledger.running.clear()
            self._started = False
        return status

    async def _await_running(self, timeout_s: float) -> None:
        """Wait until no job runs (each one's end recorded), or ``timeout_s`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._ledger.running and loop.time() < deadline:
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

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
                self._telemetry.error(exc)
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
        began_s = time.perf_counter()
        try:
            self._schedule()
        except ServiceUnavailable as exc:
            self._telemetry.error(exc)
            log.warning("scheduling pass failed (%s); retrying", exc)
            asyncio.get_running_loop().call_later(RETRY_MAX_S / 5, self._request_pass)
        except Exception:  # the loop must survive anything a pass meets; the job rows stay PENDING
            log.exception("scheduling pass failed")
            asyncio.get_running_loop().call_later(RETRY_MAX_S, self._request_pass)
        self._telemetry.pass_ran(time.perf_counter() - began_s, full=self._last_pass_full)
        self._wake_idle_waiters()

    def _schedule(self) -> None:
        if self._priorities.refresh():
            self._request_pass()  # the next chunk of a priority recomputation, in the next pass
        waiting = self._blocked_reasons()
        ledger = self._ledger
        ready = [node for node in ledger.nodes.values() if self._dispatcher.has_keeper(node.ray_node_id)]
        began_s = time.monotonic()
        full = self._last_pass_full = began_s >= self._next_full_pass_s
        # A full pass reads every job when the nodes jobs may use changed since the last one that
        # did (a job recorded as waiting for Priority may no longer fit anywhere); else it stops
        # where every partition is blocked and decides only the unsettled jobs after that point.
        shape = frozenset((node.ray_node_id, node.capacity, node.partitions) for node in ready)
        every_job = full and shape != self._nodes_read_by_full_pass
        if full:
            ledger.recount_partitions(excluded=waiting)
        plan = policy.plan_pass(
            ledger.ordered(waiting), ready, self._settings.worker_concurrency
            - len(ledger.running), used=ledger.used(), array_running=ledger.array_running(),
            running=ledger.holds(self._settings.kill_wait_s), now_s=time.time(),
            backfill=self._settings.scheduler_backfill, reserve_depth=self._settings.backfill_max_job_test,
            depth=None if full else QUICK_PASS_DEPTH, partitions=None if every_job else ledger.partitions())
        if full:
            if every_job:
                self._nodes_read_by_full_pass = shape
            if not plan.complete:
                reached = {*plan.reasons, *waiting, *(start.job_id for start in plan.starts)}
                rest, more = ledger.unsettled_jobs(reached, FULL_PASS_SETTLE_MAX)
                plan.reasons.update(policy.tail_reasons(rest, ready, plan.array_running))
                plan.complete = not more
            cost_s = time.monotonic() - began_s
            if plan.complete:
                self._next_full_pass_s = time.monotonic() + max(FULL_PASS_MIN_S, FULL_PASS_COST_RATIO * cost_s)
            else:  # more unsettled jobs than one pass decides: the next pass, full too, goes on with them
                self._request_pass()
        elif not plan.complete:
            self._full_pass_later()  # the jobs it did not reach get their reasons then
        self._last_pass_started, self._last_pass_complete = bool(plan.starts), plan.complete
        if plan.starts:
            self._start(plan.starts)
        self._wake_keepers(plan.reasons)
        self._record_reasons({**waiting, **plan.reasons})
        self._tell_autoscaler()

    def _full_pass_later(self) -> None:
        if self._full_pass_timer is None:
            delay_s = max(0.0, self._next_full_pass_s - time.monotonic())
            self._full_pass_timer = asyncio.get_running_loop().call_later(delay_s, self._full_pass_due)

    def _full_pass_due(self) -> None:
        self._full_pass_timer = None
        self._request_pass()

    def _tell_autoscaler(self, *, now_s: float | None = None) -> None:
        """Ask Ray's autoscaler for the nodes that unmet pending jobs need (``demand``); at most
        once per DEMAND_PERIOD_S, and only when the request changes or is withdrawn."""
        now_s = time.monotonic() if now_s is None else now_s
        if now_s - self._demand_at < DEMAND_PERIOD_S:
            return
        self._demand_at = now_s
        ledger = self._ledger
        waiting = ((candidate, ledger.pending[candidate.job_id].reason) for candidate in ledger.ordered())
        live = list(ledger.nodes.values())
        bundles = demand.request(live, demand.unmet(waiting, live, ledger.used(), self._settings.partitions))
        to_send = self._requests.next(bundles, now_s)
        if to_send is not None and not self._demand_in_flight:
            self._demand_in_flight = True
            self._spawn(self._send_demand(to_send, len(live)))

    async def _send_demand(self, bundles: list[dict[str, float]], live: int) -> None:
        """request_resources is a blocking call to the GCS: made in a thread, never in a pass."""
        try:
            from ray.autoscaler.sdk import request_resources

            await asyncio.to_thread(request_resources, bundles=bundles)
        except Exception as exc:  # noqa: BLE001 - the autoscaler is a hint; tried again next time
            log.warning("could not pass the pending jobs' demand to Ray's autoscaler: %s", exc)
            return
        finally:
            self._demand_in_flight = False
        self._requests.done(bundles)
        log.info("asked Ray's autoscaler for %d bundles (%s)", len(bundles),
                 "withdrawn" if not bundles else f"{len(bundles) - live} for pending jobs")

    def _blocked_reasons(self) -> dict[int, jobs.Reason]:
        """Pending jobs that may not start yet whatever the resources: held, --begin, dependency, partition down."""
        pending = self._ledger.pending
        conditional = self._ledger.conditional
        if len(conditional) > len(pending):  # ids of jobs that left linger until here
            conditional.intersection_update(pending.keys())
        found = eligibility.check([(p.job, p.dependency) for job_id in conditional
                                   if (p := pending.get(job_id)) is not None], self._repo, datetime.now(timezone.utc))
        self._wake_at(found.next_begin)
        for job_id in found.cancelled:  # --kill-on-invalid-dep: CANCELLED now, no longer pending
            gone = pending.pop(job_id)
            self._spawn(self._retry(lambda entries=sorted(gone.entry_ids): self._consumer.ack(entries)))
        if found.cancelled:
            self._request_pass()  # another pass: the jobs that depend on these may be decided now
        blocked = {job_id: reason for job_id, reason in found.reasons.items() if job_id in pending}
        for p in pending.values() if self._down_partitions else ():
            if p.job.spec.partition in self._down_partitions and p.job.id not in blocked:
                blocked[p.job.id] = jobs.Reason.PARTITION_DOWN
        return blocked

    def _start(self, allocations: list[Allocation]) -> None:
        started = self._repo.start_jobs(allocations)
        by_keeper: dict[str, list[Launch]] = {}
        for allocation in allocations:
            pending = self._ledger.pending.pop(allocation.job_id)
            if allocation.job_id not in started:  # no longer PENDING in the database (cancelled meanwhile)
                self._spawn(self._consumer.ack(sorted(pending.entry_ids)))
                continue
            task, launch = self._dispatcher.task_for(pending.job, allocation)
            self._job_started(pending.job, allocation)
            self._ledger.running[allocation.job_id] = RunningJob(pending.job, allocation, pending.entry_ids, task)
            by_keeper.setdefault(task.node_id, []).append(launch)
        for node_id, launches in by_keeper.items():
            self._spawn(self._launch(node_id, launches))

    def _job_started(self, job: jobs.Job, allocation: Allocation) -> None:
        if job.restart_count == 0:  # submit -> start counts first starts only (a requeued job's waits are others)
            self._telemetry.started(time.time() - job.submit_time.timestamp())
        node = ",".join(allocation.node_names)
        log.info("job %s RUNNING on %s", job.id, node,
                 extra=logs.job(job.id, state=jobs.JobState.RUNNING, node=node))

    async def _launch(self, node_id: str, launches: list[Launch]) -> None:
        """Have the node's keeper launch the attempts; one that cannot be launched ends (never stuck RUNNING).

        A failed call is tried once more when the keeper answers again as the same incarnation (a
        launch is idempotent: the keeper skips attempts it already has); a keeper that restarted or
        does not answer took them with it, so they end as jobs whose node failed.
        """
        for attempt in (1, 2):
            try:
                refused = await self._dispatcher.launch(node_id, launches)
                break
            except Exception as error:  # noqa: BLE001 - the keeper is restarting, or its node is going
                log.warning("keeper on %s could not launch %d jobs: %s", node_id, len(launches), error)
                if attempt == 1 and await self._same_keeper(node_id):
                    continue
                await self._launch_failed(node_id, launches, error)
                return
        await self._record([(self._ledger.running[job_id], jobs.Ending(
            jobs.JobState.FAILED, jobs.Reason.LAUNCH_FAILED, why, exit_code=1))
            for job_id, why in refused.items() if job_id in self._ledger.running])

    async def _same_keeper(self, node_id: str) -> bool:
        before = self._dispatcher.info(node_id)
        try:
            after = await self._dispatcher.hello(node_id, KEEPER_RETURN_S / 3)
        except Exception:  # noqa: BLE001 - not answering
            return False
        return before is not None and after.incarnation == before.incarnation

    async def _launch_failed(self, node_id: str, launches: list[Launch], error: Exception) -> None:
        name = keeper_name(self._node_name(node_id))
        if self._dispatcher.has_keeper(node_id):
            self._dispatcher.forget_keeper(node_id)  # nothing more goes there until it is met again
        report = RunReport(EndCause.LOST, detail=f"keeper {name} failed while launching it: {type(error).__name__}")
        batch = [(running, ending.decide(report, running.intent, requeue_allowed=running.job.spec.requeue))
                 for launch in launches if (running := self._ledger.running.get(launch.job_id)) is not None]
        await self._record(batch)

    def _node_name(self, node_id: str) -> str:
        node = self._ledger.nodes.get(node_id)
        info = self._dispatcher.info(node_id)
        return node.name if node else (info.node_name if info else node_id[:12])

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
                    self._ledger.set_reason(job_id, reason)

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

    def _start_collectors(self) -> None:
        """One loop per keeper reading its ends, for keepers that have none yet."""
        for node_id in self._dispatcher.keeper_nodes():
            if node_id not in self._collectors or self._collectors[node_id].done():
                self._collectors[node_id] = asyncio.create_task(self._collect(node_id))

    async def _collect(self, node_id: str) -> None:
        """Record the ends the keeper of ``node_id`` reports, batch by batch, for as long as it lives."""
        while self._dispatcher.has_keeper(node_id):
            try:
                ended = await self._dispatcher.ended(node_id, ENDED_WAIT_S)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the keeper died (Ray restarts it) or its node went
                await self._keeper_failed(node_id, exc)
                continue
            if ended:
                await self._take_ends(node_id, ended)

    async def _take_ends(self, node_id: str, ended: list[Ended]) -> None:
        batch, stale = [], []
        for report in ended:
            running = self._ledger.running.get(report.job_id)
            if running is None or running.task is None or running.task.token != report.token:
                stale.append(report.token)  # recorded already (or by another scheduler): forget it
                continue
            if running.intent is ending.Intent.NONE and report.intent != ending.Intent.NONE.value:
                running.intent = ending.Intent(report.intent)  # asked by a scheduler before this one
            if report.report.cause in RAY_FAILURES and running.intent is ending.Intent.NONE:
                self._spawn(self._ray_failure(running, report))  # may take seconds: not in the batch
                continue
            batch.append((running, ending.decide(report.report, running.intent,
                                                 requeue_allowed=running.job.spec.requeue,
                                                 lost_node=running.lost_node)))
        await self._record(batch)
        self._dispatcher.forget(node_id, stale + [running.task.token for running, _ in batch])

    async def _ray_failure(self, running: RunningJob, report: Ended) -> None:
        """The task's worker died without reporting: NODE_FAIL if its node died too, else FAILED; reap."""
        lost = await nodes.lost_node_of(running.allocation, NODE_LOSS_GRACE_S)
        if lost:  # the worker died with its node: NODE_FAIL, not a failure of the job
            self._refresh_nodes()  # nothing more may be placed on it
            running.intent, running.lost_node = ending.Intent.NODE_LOST, lost
        else:  # e.g. its worker was SIGKILLed: what it ran may still be there
            await self._dispatcher.reap(running.job, running.allocation.first.ray_node_id)
        await self._record([(running, ending.decide(report.report, running.intent,
                                                    requeue_allowed=running.job.spec.requeue,
                                                    lost_node=running.lost_node))])
        self._dispatcher.forget(running.task.node_id, [report.token])

    async def _keeper_failed(self, node_id: str, error: Exception) -> None:
        """A keeper call failed.  Back in time as the same incarnation: a hiccup.  Restarted, or gone:
        its tasks died with it, so its jobs end NODE_FAIL (or are requeued), naming the keeper."""
        before = self._dispatcher.info(node_id)
        try:
            after = await self._dispatcher.hello(node_id, KEEPER_RETURN_S)
        except Exception:  # noqa: BLE001 - not back: its node is probably gone (the node loop sees it)
            after = None
        if after is not None and before is not None and after.incarnation == before.incarnation:
            log.warning("keeper on %s failed a call (%s); it answers again", node_id, error)
            return
        name = keeper_name(self._node_name(node_id))
        lost = [r for r in self._ledger.running.values() if r.task is not None and r.task.node_id == node_id
                and (before is None or r.task.incarnation == before.incarnation)]
        log.error("%s died with %d running jobs (%s)", name, len(lost), error)
        for running in lost:
            if after is not None:
                await self._dispatcher.reap(running.job, node_id)
            self._dispatcher.remove_placement_group(running.job.id)
        report = RunReport(EndCause.LOST, detail=f"keeper {name} died while the job ran")
        await self._record([(r, ending.decide(report, r.intent, requeue_allowed=r.job.spec.requeue,
                                               lost_node=r.lost_node)) for r in lost])
        if after is None:  # not back: place nothing there until the node loop meets it again (or drops it)
            self._dispatcher.forget_keeper(node_id)

    async def _record(self, batch: list[tuple[RunningJob, jobs.Ending | ending.Requeue]]) -> None:
        """Store a batch of ends (one transaction for the final states), give back the allocations,
        charge fair share, then requeue or acknowledge each."""
        # Only attempts still running as these objects: an end decided twice (the node loop and the
        # keeper's collector both saw a node go) is recorded once, and never on a later attempt.
        batch = [(running, decision) for running, decision in batch
                 if self._ledger.running.get(running.job.id) is running]
        if not batch or self._lease_is_lost:  # lost: the rows belong to the scheduler that holds the lease now
            for running, _ in batch:
                self._ledger.running.pop(running.job.id, None)
            return
        endings = [(running.job.id, decision) for running, decision in batch if isinstance(decision, jobs.Ending)]
        await self._retry(lambda: self._repo.finish_jobs(endings))
        requeued = {}
        for running, decision in batch:
            if isinstance(decision, ending.Requeue):
                requeued[running.job.id] = await self._retry(
                    lambda running=running, decision=decision: recovery.record(self._repo, running.job.id, decision))
        now_s, acks = time.time(), []
        self._retirement.touch({node.ray_node_id for running, _ in batch for node in running.allocation.nodes},
                               time.monotonic())
        for running, decision in batch:
            cpu_seconds = running.allocation.total.cpus * max(0.0, now_s - running.started_s)
            self._priorities.charge(running.job.spec.account, cpu_seconds)
            self._job_ended(running, decision, cpu_seconds)
            del self._ledger.running[running.job.id]
            again = requeued.get(running.job.id)
            if again is not None:
                self._intake.add(again, running.entry_ids)
            else:
                acks.extend(running.entry_ids)
        await self._retry(lambda: self._consumer.ack(sorted(acks)))
        self._request_pass()
        self._wake_idle_waiters()

    def _job_ended(self, running: RunningJob, decision: jobs.Ending | ending.Requeue, cpu_seconds: float) -> None:
        job, node = running.job, ",".join(running.allocation.node_names)
        if isinstance(decision, ending.Requeue):
            log.info("job %s requeued from %s: %s", job.id, node, decision.message,
                     extra=logs.job(job.id, state=jobs.JobState.PENDING, node=node, reason=jobs.Reason.REQUEUED))
            return
        self._telemetry.ended(decision.state.value, job.spec.account, cpu_seconds)
        log.info("job %s %s on %s (reason %s, exit code %s)%s", job.id, decision.state.value, node,
                 decision.reason.value, decision.exit_code, f": {decision.message}" if decision.message else "",
                 extra=logs.job(job.id, state=decision.state, node=node, reason=decision.reason))

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
                self._telemetry.error(exc)
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
                self._telemetry.error(exc)
                log.warning("could not check the scheduler lease: %s", exc)
            try:
                self._tell_autoscaler()  # also withdraws a request once its demand is gone
                if self._refresh_nodes():
                    self._request_pass()
                elif any(not self._dispatcher.has_keeper(node.ray_node_id) for node in self._nodes_to_meet()):
                    self._spawn(self._meet_keepers())  # one that did not answer, or failed a launch
                self._retire_idle_keepers()
            except ConductorError as exc:
                log.warning("node refresh failed: %s", exc)
            except Exception:  # a GCS hiccup must not end node discovery for good
                log.exception("node refresh failed")

    def _lease_lost(self) -> None:
        """Another scheduler holds the database now: stop dispatching and recording, and leave the jobs.

        They belong to their keepers: the scheduler that holds the lease adopts them, and nothing
        more is recorded from here, so no job is recorded twice.
        """
        log.critical("the scheduler lease was lost to another scheduler: stopping; %d running jobs are left to it",
                     len(self._ledger.running))
        self._stopping = self._lease_is_lost = True
        for task in [*self._tasks, *self._collectors.values()]:
            if task is not asyncio.current_task():
                task.cancel()
        self._collectors.clear()
        self._ledger.running.clear()
        self._started = False

    def _refresh_nodes(self) -> bool:
        """Take Ray's alive nodes; record a change; end the jobs of nodes that left NODE_FAIL."""
        found = nodes.alive_nodes(self._settings.partitions, local_node_id=self._local_node_id,
                                  local_name=self._settings.node_name)
        if not self._ledger.replace_nodes(found):
            return False
        self._retirement.keep_only(self._ledger.nodes.keys())
        self._repo.replace_nodes(found)
        gone_keepers = []
        for running in self._ledger.running.values():
            lost = self._ledger.lost_nodes(running)
            if lost and running.intent is ending.Intent.NONE:
                log.warning("job %s: node %s left the cluster; ending it NODE_FAIL", running.job.id, lost[0],
                            extra=logs.job(running.job.id, node=lost[0], reason=jobs.Reason.NODE_DOWN))
                running.intent, running.lost_node = ending.Intent.NODE_LOST, lost[0]
                if running.task is not None and running.task.node_id in self._ledger.nodes:
                    self._dispatcher.stop(running.task, running.intent.value)  # its keeper's node is still there
                else:
                    gone_keepers.append(running)
        if gone_keepers:  # their keeper went with the node, and their ends with it
            report = RunReport(EndCause.NODE_DIED)
            self._spawn(self._record([(r, ending.decide(report, r.intent, requeue_allowed=r.job.spec.requeue,
                                                        lost_node=r.lost_node)) for r in gone_keepers]))
        if self._started:
            self._spawn(self._meet_keepers())
        return True

    async def _meet_keepers(self) -> None:
        """Keepers for nodes that joined (and none for those that left); a collector for each new one."""
        for node_id in [n for n in self._collectors if n not in self._ledger.nodes]:
            self._collectors.pop(node_id).cancel()
        try:
            await self._dispatcher.ensure_keepers(self._nodes_to_meet())
        except Exception as exc:  # noqa: BLE001 - a keeper that does not answer yet: next refresh
            log.warning("could not meet every keeper: %s", exc)
        self._start_collectors()
        self._request_pass()

    def _nodes_to_meet(self) -> list:
        """The live nodes that should have a keeper: all but those whose keeper is (being) retired."""
        return [node for node in self._ledger.nodes.values() if not self._retirement.resting(node.ray_node_id)]

    # -- idle keepers (see retirement.py: an idle worker node may then be stopped by the autoscaler) --

    def _retire_idle_keepers(self) -> None:
        """Set aside the keepers of non-head nodes idle for KEEPER_IDLE_TIMEOUT_S, and retire them.

        All in this one turn of the loop, which no pass interleaves with: the node has no running
        attempt in the ledger (a launch in flight is one) and no unreleased allocation row, and its
        keeper leaves the dispatcher before anything else can run, so no job is placed on it again.
        """
        busy = {node.ray_node_id for running in self._ledger.running.values() for node in running.allocation.nodes}
        workers = [node_id for node_id in self._dispatcher.keeper_nodes() if node_id not in self._head_ids]
        due = self._retirement.due(workers, busy, time.monotonic())
        if not due:
            return
        try:
            held = self._repo.unreleased_by_node()
        except ServiceUnavailable as exc:  # the database is down: retire nothing before it answers
            log.warning("not retiring idle keepers: %s", exc)
            return
        for node_id in due:
            if node_id in held or node_id in busy:
                continue
            aside = self._dispatcher.set_aside(node_id)
            if aside is None:
                continue
            self._retirement.retiring(node_id)
            collector = self._collectors.pop(node_id, None)
            if collector is not None:
                collector.cancel()
            self._spawn(self._retire_keeper(node_id, *aside))

    async def _retire_keeper(self, node_id: str, keeper: Any, info: Any) -> None:
        try:
            ended = await self._dispatcher.retire(keeper, info)
        except Exception as exc:  # noqa: BLE001 - not answering: the node loop meets it again
            log.warning("could not retire %s: %s", keeper_name(info.node_name), exc)
            self._retirement.kept(node_id)
            return
        if ended:
            self._retirement.retired(node_id)
            if node_id not in self._ledger.nodes:  # it left meanwhile
                self._retirement.keep_only(self._ledger.nodes.keys())
            log.info("retired %s, idle for %.0f s: its node may be stopped when idle", keeper_name(info.node_name),
                     self._retirement.idle_timeout_s)
        else:  # it held something after all: use it again
            self._retirement.kept(node_id)
            if node_id in self._ledger.nodes:
                self._dispatcher.take_back(node_id, keeper, info)
                self._start_collectors()
        self._request_pass()  # a job that waited for it meanwhile wakes it now

    def _wake_keepers(self, reasons: dict[int, jobs.Reason]) -> None:
        """Make again the keepers of retired nodes that a job waiting for room (the pass's ``reasons``)
        could use; not blocking: the keeper is met in a task, which then asks for a pass."""
        retired = self._retirement.retired_nodes()
        if not retired:
            return
        pending = self._ledger.pending
        woken = retirement.wanted([self._ledger.nodes[n] for n in retired if n in self._ledger.nodes],
                                  (pending[job_id].job.spec for job_id, reason in reasons.items()
                                   if reason in demand.WAITING_FOR_ROOM and job_id in pending))
        for node_id in woken:
            log.info("making the keeper of %s again: a pending job could use it", self._node_name(node_id))
            self._retirement.wake(node_id)
        if woken:
            self._spawn(self._meet_keepers())

    # -- telemetry -----------------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        """Measure the loop's lag (how late a LAG_PROBE_S timer fires) and push the ledger's gauges to Ray."""
        loop = asyncio.get_running_loop()
        exported_at = loop.time()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self._telemetry.loop_lag(loop.time() - asked - LAG_PROBE_S)
            if loop.time() - exported_at >= EXPORT_EVERY_S:
                exported_at = loop.time()
                self._telemetry.export_ledger(self._ledger)

    # -- helpers -------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _is_idle(self) -> bool:
        if not self._started or not self._queue_drained or self._ledger.running or self._pass_scheduled:
            return False
        return not self._ledger.pending or (not self._last_pass_started and self._last_pass_complete)

    def _wake_idle_waiters(self) -> None:
        if self._is_idle():
            self._idle.set()
