"""The scheduler: one detached, named Ray actor per cluster (``conductor-scheduler``).

It consumes the queue, keeps pending jobs in (priority, submit time) order, and on
every event (a delivery, a finished job, a node change) runs one pass of the policy.
A job that fits is started in one transaction (RUNNING + allocation row) and then
launched as a Ray task pinned to the chosen node, with ``num_cpus`` and ``memory`` equal
to the allocation, so Ray's accounting and the allocation rows agree (invariant 3).
When the task ends, one transaction records the final state and releases the
allocation, and only then is the queue entry acknowledged.

Everything runs on the actor's event loop; a pass never awaits, so passes do not
interleave.  The job path does not poll: the queue read blocks and task results are
awaited.  Only the node list is refreshed on a timer (NODE_REFRESH_S), to see nodes
join and leave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import ray
from ray.util.placement_group import NODE_ID_LABEL_KEY, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from cluster import nodes as cluster_nodes
from conductor import (dependencies, eligibility, executor, jobs, orphans, outcomes, partitions, policy, priority,
                       queue)
from conductor.config import Settings
from conductor.db.lease import SchedulerLease
from conductor.db.repository import JobRepository, NodeInfo, Outcome, Start
from conductor.db.session import make_engine
from conductor.exceptions import ConductorError, SchedulerBusy, ServiceUnavailable

log = logging.getLogger(__name__)

ACTOR_NAME = "conductor-scheduler"
#: Most queue entries taken in one read.
READ_BATCH = 1000
#: How often the node list is compared with Ray's (nodes joining or leaving).
NODE_REFRESH_S = 2.0
#: When a job's Ray worker dies, how long to watch whether its node died too (then NODE_FAIL,
#: else FAILED).  Ray marks a node dead after its health checks fail (Ray's
#: health_check_period_ms x health_check_failure_threshold).
NODE_LOSS_GRACE_S = 5.0
#: How often pending jobs' priorities are recomputed (age and fair share move slowly; Slurm's
#: PriorityCalcPeriod).  New jobs get theirs when they arrive.
PRIORITY_CALC_PERIOD_S = 5.0
#: Most Ray workers warmed up at start (each held this long so they start side by side).
WARM_WORKERS_MAX, WARM_HOLD_S, WARM_TIMEOUT_S = 8, 0.5, 30.0
#: Back-off bounds when the database or Redis is unavailable.
RETRY_MIN_S, RETRY_MAX_S = 0.1, 5.0
#: Time allowed for a reap task to be scheduled on its node, on top of conductor.orphans.REAP_TIMEOUT_S.
REAP_START_S = 10.0
#: How often the pending set is compared with the database's PENDING rows (a safety net, not
#: the job path: entries wake the scheduler; this finds rows whose entry was lost or never written).
PENDING_RESYNC_S = 10.0
_MIB = 1024 * 1024


@dataclass
class _Pending:
    job: jobs.Job
    candidate: policy.Candidate
    entry_ids: set[str] = field(default_factory=set)
    reason: str = jobs.Reason.NONE
    dependency: dependencies.Dependency | None = None


#: What to do when a running job's task ends: record its outcome, or override it.
END_OUTCOME, END_CANCEL, END_REQUEUE, END_STOP = "outcome", "cancel", "requeue", "stop"
#: ... or end it NODE_FAIL (requeued when the job allows it): one of its nodes left the cluster.
END_NODE_FAIL = "node_fail"


@dataclass
class _Running:
    job: jobs.Job
    start: Start
    entry_ids: set[str]
    ref: Any = None
    on_end: str = END_OUTCOME
    started_s: float = field(default_factory=time.time)  #: wall clock, for backfill's expected end
    placement_group: Any = None  #: a multi-node job's bundles, removed when it ends
    lost_node: str = ""  #: the node whose departure ends it (END_NODE_FAIL)


class Scheduler:
    """The actor's body.  Use :func:`get_or_create` to obtain the cluster's one instance."""

    def __init__(self, settings: Settings) -> None:
        logging.basicConfig(level=settings.log_level)
        self._settings = settings
        self._started = False
        self._pending: dict[int, _Pending] = {}
        self._running: dict[int, _Running] = {}
        self._nodes: dict[str, policy.NodeSlot] = {}
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
        self._weights = priority.Weights.of(settings)
        self._partition_factors = priority.partition_factors(settings.partitions)
        self._down_partitions = {p.name for p in settings.partitions if p.state == "DOWN"}
        self._fairshare = priority.FairShare(float(settings.priority_decay_half_life_s))
        self._priorities_at = 0.0  # monotonic time of the last full recomputation
        self._lease_is_lost = False  # another scheduler took the database: record nothing more

    # -- actor methods -------------------------------------------------------------------

    async def start(self) -> dict:
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
        return {**self.describe(), "started_now": started_now}

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
        self._local_node_id = ray.get_runtime_context().get_node_id()
        self._run_job = ray.remote(executor.run_job)
        warming = self._warm_up_workers()
        self._refresh_nodes()
        self._load_usage()
        await self._reap_leftovers(self._orphaned_attempts())  # before requeueing: attempts never overlap
        self._reconcile()
        self._stopping = False
        self._tasks = [asyncio.create_task(self._consume_loop()), asyncio.create_task(self._node_loop())]
        self._request_pass()
        await asyncio.wait([asyncio.ensure_future(ref) for ref in warming], timeout=WARM_TIMEOUT_S)

    def describe(self) -> dict:
        """A summary for banners and health checks."""
        return {
            "worker_concurrency": self._settings.worker_concurrency,
            "nodes": [{"name": n.name, "ray_node_id": n.ray_node_id, "total_cpus": n.total_cpus,
                       "total_memory_mb": n.total_memory_mb, "used_cpus": n.used_cpus,
                       "used_memory_mb": n.used_memory_mb} for n in self._nodes.values()],
            "pending": len(self._pending),
            "running": len(self._running),
            "queue": queue.describe(self._settings),
        }

    async def wait_idle(self) -> dict:
        """Return once the queue is drained and no job runs or can start (WORKER_BURST)."""
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()
        return self.describe()

    async def stop(self, running_jobs: str = "requeue", wait_s: float = 0.0) -> dict:
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
            for running in self._running.values():
                if running.on_end == END_OUTCOME:
                    running.on_end = END_STOP
                if running.ref is not None:
                    ray.cancel(running.ref)
            await self._await_running(self._settings.kill_wait_s + 10)
            await self._consumer.close()
            self._lease.release()
            self._pending.clear()
            self._started = False
        return self.describe()

    async def _await_running(self, timeout_s: float) -> None:
        """Wait until no job runs (each one's end recorded), or ``timeout_s`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._running and self._watchers and loop.time() < deadline:
            await asyncio.wait(set(self._watchers), timeout=min(1.0, deadline - loop.time()))

    # -- start-up ------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """A fresh actor owns no task: RUNNING rows are orphans; PENDING rows are (re)loaded."""
        for job in self._repo.get_many(self._repo.ids_in_state(jobs.JobState.RUNNING)):
            reason = "scheduler restarted while the job ran"
            if job.cancel_requested:
                self._repo.finish_job(job.id, Outcome(jobs.JobState.CANCELLED, jobs.Reason.NONE, exit_code=0,
                                                      signal=15))
            elif job.spec.requeue:
                self._repo.requeue_running(job.id, f"{jobs.Reason.REQUEUED}: {reason}")
            else:
                self._repo.finish_job(job.id, Outcome(jobs.JobState.NODE_FAIL, f"{jobs.Reason.NODE_DOWN}: {reason}"))
        released = self._repo.release_orphaned_allocations()
        if released:
            log.warning("released %d allocation rows of jobs that no longer run", released)
        self._resync_pending()

    def _resync_pending(self) -> None:
        """Make the pending set the database's PENDING rows (the truth), whatever the queue delivered.

        Adopts rows whose queue entry never came (lost with a Redis that restarted empty, or
        never written by an API killed between its commit and its push) and forgets jobs that
        are no longer PENDING, acknowledging their entries.  A later entry of an adopted job is
        attached to it, and acknowledged when the job ends.
        """
        in_database = set(self._repo.ids_in_state(jobs.JobState.PENDING))
        gone = [job_id for job_id in self._pending if job_id not in in_database]
        stale = sorted(entry for job_id in gone for entry in self._pending.pop(job_id).entry_ids)
        if stale:
            self._spawn(self._retry(lambda: self._consumer.ack(stale)))
        missing = [job_id for job_id in in_database if job_id not in self._pending and job_id not in self._running]
        unreadable: dict[str, list[int]] = {}
        for job in self._repo.get_many(missing):
            if job.state is jobs.JobState.PENDING:
                try:
                    self._add_pending(job, set())
                except Exception as exc:  # one bad row (a malformed --dependency, say) must not stop the rest
                    log.warning("job %s cannot be scheduled: %s: %s", job.id, type(exc).__name__, exc)
                    why = f"{jobs.Reason.SYSTEM_FAILURE}: cannot schedule the job: {type(exc).__name__}: {exc}"
                    unreadable.setdefault(why[:500], []).append(job.id)
        self._repo.set_pending_reasons(unreadable)
        if missing or gone:
            log.info("pending set resynchronised with the database: %d adopted, %d dropped", len(missing), len(gone))
            self._request_pass()

    def _orphaned_attempts(self) -> list[tuple[jobs.Job, str]]:
        """RUNNING jobs of a scheduler that is gone, with the Ray node their attempt ran on."""
        nodes = {allocation.job_id: allocation.ray_node_id for allocation in self._repo.unreleased_allocations()}
        running = self._repo.get_many(self._repo.ids_in_state(jobs.JobState.RUNNING))
        # a node that is gone took its processes with it (and a task cannot be pinned to it)
        return [(job, nodes[job.id]) for job in running if job.id in nodes and nodes[job.id] in self._nodes]

    async def _reap_leftovers(self, attempts: list[tuple[jobs.Job, str]]) -> None:
        """Kill what dead attempts left running, each on its node (conductor.orphans), and wait for it."""
        attempts = [(job, node_id) for job, node_id in attempts if node_id in self._nodes]  # a dead node's are gone
        if not attempts:
            return
        reaper = ray.remote(orphans.reap)
        refs = {job.id: reaper.options(
            num_cpus=0, max_retries=0, name=f"{job.id}:reap",
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(job.id, (job.stdout_path, job.stderr_path)) for job, node_id in attempts}
        waiting = {asyncio.ensure_future(ref): job_id for job_id, ref in refs.items()}
        done, late = await asyncio.wait(waiting, timeout=orphans.REAP_TIMEOUT_S + REAP_START_S)
        for future in done:
            if future.exception() is not None:  # e.g. the node is gone, and its processes with it
                log.warning("could not reap job %s: %s", waiting[future], future.exception())
            elif future.result():
                log.warning("killed %d leftover processes of job %s", future.result(), waiting[future])
        for future in late:
            log.warning("reaping job %s did not finish in time", waiting[future])

    def _warm_up_workers(self) -> list:
        """Start worker processes before the first jobs need them (start() waits for them)."""
        warm = ray.remote(executor.warm_up).options(num_cpus=0, max_retries=0, name="conductor-warm-up")
        return [warm.remote(WARM_HOLD_S) for _ in range(min(self._settings.worker_concurrency, WARM_WORKERS_MAX))]

    # -- queue ---------------------------------------------------------------------------

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
                await self._accept(entries)
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

    async def _accept(self, entries: list[queue.Entry]) -> None:
        """Take in submissions, then carry out control messages (cancel, signal, reload, requeue)."""
        await self._accept_submissions([e for e in entries if e.op == queue.SUBMIT])
        controls = [e for e in entries if e.op != queue.SUBMIT]
        for entry in controls:
            await self._control(entry)
        await self._consumer.ack([e.entry_id for e in controls])
        if controls:
            self._request_pass()

    async def _accept_submissions(self, entries: list[queue.Entry]) -> None:
        """Add delivered PENDING jobs; acknowledge entries of jobs that are not pending any more."""
        by_job: dict[int, set[str]] = {}
        for entry in entries:
            by_job.setdefault(entry.job_id, set()).add(entry.entry_id)
        unknown = [job_id for job_id in by_job if job_id not in self._pending and job_id not in self._running]
        loaded = {job.id: job for job in self._repo.get_many(unknown)}
        stale: list[str] = []
        for job_id, entry_ids in by_job.items():
            holder = self._pending.get(job_id) or self._running.get(job_id)
            if holder is not None:
                holder.entry_ids |= entry_ids
            elif job_id in loaded and loaded[job_id].state is jobs.JobState.PENDING:
                self._add_pending(loaded[job_id], entry_ids)
            else:  # finished, or delivered twice: it runs once
                stale.extend(entry_ids)
        await self._consumer.ack(stale)
        if by_job:
            self._request_pass()

    def _add_pending(self, job: jobs.Job, entry_ids: set[str]) -> None:
        candidate = policy.Candidate(
            job_id=job.id, partition=job.spec.partition, cpus=job.spec.total_cpus,
            memory_mb=job.spec.memory_per_node_mb, priority=self._priority_of(job, time.time()).priority,
            submit_order=job.submit_time.timestamp(), array_job_id=job.spec.array_job_id,
            array_max_running=job.spec.array_max_running, gpus=job.spec.gpus_per_node, nodes=job.spec.nodes,
            time_limit_s=job.spec.time_limit_s)
        parsed = dependencies.parse(job.spec.dependency) if job.spec.dependency else None
        self._pending[job.id] = _Pending(job, candidate, entry_ids, job.reason, parsed)

    async def _control(self, entry: queue.Entry) -> None:
        """Carry out one control message; a message about a job that is not here is a no-op."""
        running, pending = self._running.get(entry.job_id), self._pending.get(entry.job_id)
        if entry.op in (queue.CANCEL, queue.REQUEUE) and running is not None:
            running.on_end = END_CANCEL if entry.op == queue.CANCEL else END_REQUEUE
            if running.ref is not None:
                ray.cancel(running.ref)
        elif entry.op == queue.SIGNAL and running is not None:
            self._signal(running, int(entry.arg))
        elif entry.op in (queue.CANCEL, queue.RELOAD, queue.REQUEUE):
            await self._reload(entry.job_id, pending)

    async def _reload(self, job_id: int, pending: _Pending | None) -> None:
        """Re-read a job the service changed (held, released, cancelled, requeued)."""
        job = self._repo.get_many([job_id])
        entry_ids = pending.entry_ids if pending else set()
        self._pending.pop(job_id, None)
        if job and job[0].state is jobs.JobState.PENDING:
            self._add_pending(job[0], entry_ids)
        elif entry_ids:
            await self._consumer.ack(sorted(entry_ids))

    def _signal(self, running: _Running, signum: int) -> None:
        """Send a signal to the job's process group on its node, through a tiny pinned task."""
        sender = ray.remote(executor.signal_job).options(
            num_cpus=0, max_retries=0, name=f"{running.job.id}:signal",
            scheduling_strategy=NodeAffinitySchedulingStrategy(running.start.ray_node_id, soft=False))
        sender.remote(running.job.id, signum)

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
        self._refresh_priorities()
        waiting = self._blocked_reasons()
        candidates = sorted((p.candidate for p in self._pending.values() if p.job.id not in waiting),
                            key=policy.order_key)
        slots = self._settings.worker_concurrency - len(self._running)
        array_running: dict[int, int] = {}
        for running in self._running.values():
            if running.job.spec.array_job_id is not None:
                array_running[running.job.spec.array_job_id] = array_running.get(running.job.spec.array_job_id, 0) + 1
        plan = policy.plan_pass(candidates, self._node_slots(), slots, array_running=array_running,
                                running=self._busy(), now_s=time.time(), backfill=self._settings.scheduler_backfill,
                                reserve_depth=self._settings.backfill_max_job_test)
        self._last_pass_started = bool(plan.starts)
        if plan.starts:
            self._start(plan.starts)
        self._record_reasons({**waiting, **plan.reasons})

    def _blocked_reasons(self) -> dict[int, str]:
        """Pending jobs that may not start yet whatever the resources: held, --begin, dependency."""
        blocked, next_begin = eligibility.blocked(
            [(p.job, p.dependency) for p in self._pending.values()], self._repo, datetime.now(timezone.utc))
        self._wake_at(next_begin)
        if self._down_partitions:
            for p in self._pending.values():
                if p.job.spec.partition in self._down_partitions and p.job.id not in blocked:
                    blocked[p.job.id] = jobs.Reason.PARTITION_DOWN
        return blocked

    # -- priority --------------------------------------------------------------------------

    def _priority_of(self, job: jobs.Job, now_s: float) -> priority.Factors:
        return priority.compute(
            weights=self._weights, waited_s=now_s - job.submit_time.timestamp(),
            fairshare=self._fairshare.factor(job.spec.account, now_s),
            job_cpus=job.spec.total_cpus * job.spec.nodes, cluster_cpus=sum(n.total_cpus for n in self._nodes.values()),
            partition=self._partition_factors.get(job.spec.partition, 0.0), nice=job.spec.nice,
            admin=job.spec.priority)

    def _refresh_priorities(self) -> None:
        """Recompute every pending job's priority, at most once per PRIORITY_CALC_PERIOD_S."""
        now = time.monotonic()
        if now - self._priorities_at < PRIORITY_CALC_PERIOD_S:
            return
        self._priorities_at, now_s = now, time.time()
        for pending in self._pending.values():
            value = self._priority_of(pending.job, now_s).priority
            if value != pending.candidate.priority:
                pending.candidate = replace(pending.candidate, priority=value)

    def _load_usage(self) -> None:
        """Fair share from the database: CPU-seconds of jobs that ran in the last few half-lives."""
        now_s = time.time()
        since = datetime.fromtimestamp(now_s - priority.USAGE_HALF_LIVES * self._weights.half_life_s, timezone.utc)
        records = priority.usage_of(self._repo.usage_records(since), now_s)
        self._fairshare = priority.FairShare.of(records, self._weights.half_life_s)
        self._priorities_at = 0.0

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

    def _node_slots(self) -> list[policy.NodeSlot]:
        slots = {node_id: replace(n, used_cpus=0, used_memory_mb=0, used_gpus=0) for node_id, n in self._nodes.items()}
        for running in self._running.values():
            for _, ray_node_id in running.start.all_nodes:
                slot = slots.get(ray_node_id)
                if slot is not None:
                    slot.used_cpus += running.start.cpus
                    slot.used_memory_mb += running.start.memory_mb
                    slot.used_gpus += running.start.gpus
        return list(slots.values())

    def _busy(self) -> list[policy.Busy]:
        """Each running job's hold on each of its nodes, with its expected end (for backfill)."""
        busy = []
        for running in self._running.values():
            limit_s = running.job.spec.time_limit_s
            end_s = running.started_s + limit_s + self._settings.kill_wait_s if limit_s else None
            for _, ray_node_id in running.start.all_nodes:
                busy.append(policy.Busy(ray_node_id, running.start.cpus, running.start.memory_mb, running.start.gpus,
                                        end_s))
        return busy

    def _start(self, decisions: list[tuple[policy.Candidate, list[policy.NodeSlot]]]) -> None:
        starts = [Start(c.job_id, nodes[0].name, nodes[0].ray_node_id, c.cpus, c.memory_mb, c.gpus,
                        tuple((n.name, n.ray_node_id) for n in nodes[1:])) for c, nodes in decisions]
        started = self._repo.start_jobs(starts)
        for start in starts:
            pending = self._pending.pop(start.job_id)
            if start.job_id in started:
                self._launch_or_fail(pending, start)
            else:  # no longer PENDING in the database (cancelled meanwhile): forget it
                self._spawn(self._consumer.ack(sorted(pending.entry_ids)))

    def _launch_or_fail(self, pending: _Pending, start: Start) -> None:
        """Launch the job's task; if Ray refuses it, the job fails with the reason (never stuck RUNNING)."""
        try:
            self._launch(pending, start)
        except Exception as error:  # a Ray-side refusal is data on the job row
            log.exception("job %s could not be launched", start.job_id)
            reason = f"{jobs.Reason.LAUNCH_FAILED}: {type(error).__name__}: {error}"[:500]
            self._running[start.job_id] = _Running(pending.job, start, pending.entry_ids)
            self._spawn(self._finish(start.job_id, Outcome(jobs.JobState.FAILED, reason, exit_code=1)))

    def _launch(self, pending: _Pending, start: Start) -> None:
        """Launch the job's task on its (first) node.

        A one-node job is pinned with node affinity.  A multi-node job gets a placement group,
        one bundle per chosen node (each bundle pinned by Ray's node-id label, strict spread),
        which holds the other nodes' resources while the script runs in bundle 0.
        """
        job = pending.job
        node_names = [name for name, _ in start.all_nodes]
        request = executor.RunRequest(
            job_id=job.id, script=job.spec.script, working_dir=job.spec.working_dir,
            stdout_path=job.stdout_path, stderr_path=job.stderr_path,
            environment=jobs.job_environment(job, node_name=start.node_name, node_list=node_names),
            argv=job.spec.argv, time_limit_s=job.spec.time_limit_s, kill_wait_s=self._settings.kill_wait_s,
            memory_limit_mb=start.memory_mb or None, gpus=start.gpus, run_as=job.spec.run_as)
        group = None
        if start.more_nodes:
            bundle = {"CPU": start.cpus, **({"memory": start.memory_mb * _MIB} if start.memory_mb else {}),
                      **({"GPU": start.gpus} if start.gpus else {})}
            group = placement_group([dict(bundle) for _ in start.all_nodes], strategy="STRICT_SPREAD",
                                    name=f"conductor-job-{job.id}",
                                    bundle_label_selector=[{NODE_ID_LABEL_KEY: node_id} for _, node_id in start.all_nodes])
            strategy: Any = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
        else:
            strategy = NodeAffinitySchedulingStrategy(start.ray_node_id, soft=False)
        try:
            ref = self._run_job.options(
                name=f"{job.id}:{job.spec.name}", num_cpus=start.cpus,
                memory=start.memory_mb * _MIB if start.memory_mb else None, num_gpus=start.gpus or None,
                max_retries=0, scheduling_strategy=strategy,
            ).remote(request)
        except Exception:
            if group is not None:
                remove_placement_group(group)
            raise
        self._running[job.id] = _Running(job, start, pending.entry_ids, ref, placement_group=group)
        self._spawn(self._watch(job.id, ref))

    def _record_reasons(self, reasons: dict[int, str]) -> None:
        changed: dict[str, list[int]] = {}
        for job_id, reason in reasons.items():
            pending = self._pending.get(job_id)
            if pending is not None and pending.reason != reason:
                changed.setdefault(reason, []).append(job_id)
        if changed:
            self._repo.set_pending_reasons(changed)
            for reason, ids in changed.items():
                for job_id in ids:
                    self._pending[job_id].reason = reason

    # -- finishing -----------------------------------------------------------------------

    async def _watch(self, job_id: int, ref: Any) -> None:
        try:
            outcome = outcomes.of_result(await ref)
        except Exception as error:  # a Ray-level failure is data on the job row
            outcome = outcomes.of_error(error)
            running = self._running[job_id]
            if outcome.state is not jobs.JobState.CANCELLED and running.on_end == END_OUTCOME:
                lost = await self._lost_node(running)
                if lost:  # the worker died with its node: NODE_FAIL, not a failure of the job
                    running.on_end, running.lost_node = END_NODE_FAIL, lost
            if outcomes.may_leave_processes(error) and running.on_end != END_NODE_FAIL:
                await self._reap_leftovers([(running.job, running.start.ray_node_id)])  # e.g. its worker was SIGKILLed
        await self._finish(job_id, outcome)

    async def _lost_node(self, running: _Running) -> str:
        """The name of a node of the job that Ray reports dead within NODE_LOSS_GRACE_S, else ""."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NODE_LOSS_GRACE_S
        while True:
            alive = {info["NodeID"] for info in ray.nodes() if info.get("Alive")}
            lost = [name for name, node_id in running.start.all_nodes if node_id not in alive]
            if lost:
                self._refresh_nodes()  # nothing more may be placed on it
                return lost[0]
            if loop.time() >= deadline:
                return ""
            await asyncio.sleep(0.5)

    async def _finish(self, job_id: int, outcome: Outcome) -> None:
        running = self._running[job_id]
        if self._lease_is_lost:  # the rows belong to the scheduler that holds the lease now
            del self._running[job_id]
            return
        if running.on_end == END_CANCEL:  # scancel: CANCELLED with 0:15 whatever the script made of SIGTERM
            outcome = replace(outcome, state=jobs.JobState.CANCELLED, reason=jobs.Reason.NONE, exit_code=0,
                              signal=15)
        elif running.on_end == END_NODE_FAIL:
            outcome = Outcome(jobs.JobState.NODE_FAIL, f"{jobs.Reason.NODE_DOWN}: node {running.lost_node} left the "
                                                       "cluster while the job ran")
        node_failed = outcome.state is jobs.JobState.NODE_FAIL and running.on_end not in (END_CANCEL, END_REQUEUE)
        requeue = (running.on_end == END_REQUEUE
                   or (running.on_end == END_STOP or node_failed) and running.job.spec.requeue)
        if node_failed and requeue:
            running.on_end = END_NODE_FAIL
            running.lost_node = running.lost_node or "?"
        await self._retry(lambda: self._record_end(job_id, outcome, requeue))
        if running.placement_group is not None:
            remove_placement_group(running.placement_group)
        self._fairshare.add(running.job.spec.account, running.start.cpus * len(running.start.all_nodes)
                            * max(0.0, time.time() - running.started_s), time.time())
        del self._running[job_id]
        if requeue:
            job = await self._retry(lambda: self._repo.get(job_id))
            self._add_pending(job, running.entry_ids)
        else:
            await self._retry(lambda: self._consumer.ack(sorted(running.entry_ids)))
        self._request_pass()

    def _record_end(self, job_id: int, outcome: Outcome, requeue: bool) -> None:
        if requeue:
            running = self._running[job_id]
            why = {END_REQUEUE: "requeued by request",
                   END_NODE_FAIL: f"NODE_FAIL ({outcome.reason}), requeued"}.get(running.on_end, "scheduler stopped")
            self._repo.requeue_running(job_id, f"{jobs.Reason.REQUEUED}: {why}")
        else:
            self._repo.finish_job(job_id, outcome)

    async def _retry(self, action):  # noqa: ANN001, ANN202 - a sync or async callable
        """Run ``action`` until the database/queue accepts it, backing off meanwhile; return its result."""
        delay = RETRY_MIN_S
        while True:
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    result = await result
                return result
            except ServiceUnavailable as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
            except Exception:  # keep the job's slot accounted for; say loudly why it is stuck
                log.exception("recording failed; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    # -- nodes ---------------------------------------------------------------------------

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
                     len(self._running))
        self._stopping = self._lease_is_lost = True
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for running in self._running.values():
            running.on_end = END_STOP
            if running.ref is not None:
                ray.cancel(running.ref)
        self._started = False

    def _refresh_nodes(self) -> bool:
        """Compare Ray's alive nodes with ours; record and report a change; fail jobs of nodes that left."""
        found = cluster_nodes.alive_nodes(local_node_id=self._local_node_id, local_name=self._settings.node_name)
        if {n.ray_node_id: (n.name, n.total_cpus, n.total_memory_mb, n.total_gpus) for n in found} == {
                k: (n.name, n.total_cpus, n.total_memory_mb, n.total_gpus) for k, n in self._nodes.items()}:
            return False
        self._nodes = {n.ray_node_id: policy.NodeSlot(
            n.ray_node_id, n.name, n.total_cpus, n.total_memory_mb, labels=n.labels, total_gpus=n.total_gpus,
            partitions=partitions.memberships(self._settings.partitions, n.name, n.labels)) for n in found}
        self._repo.replace_nodes([NodeInfo(n.name, n.ray_node_id, n.total_cpus, n.total_memory_mb, n.total_gpus,
                                           n.labels, True) for n in found])
        self._fail_jobs_of_lost_nodes()
        return True

    def _fail_jobs_of_lost_nodes(self) -> None:
        """A running job with a node that is no longer alive ends NODE_FAIL (requeued when it allows)."""
        for running in self._running.values():
            lost = [name for name, node_id in running.start.all_nodes if node_id not in self._nodes]
            if not lost or running.on_end != END_OUTCOME:
                continue
            log.warning("job %s: node %s left the cluster; ending it NODE_FAIL", running.job.id, lost[0])
            running.on_end, running.lost_node = END_NODE_FAIL, lost[0]
            if running.ref is not None:
                try:
                    ray.cancel(running.ref)
                except Exception:  # its worker is gone with the node: the task ends by itself
                    log.debug("cancel of job %s failed", running.job.id, exc_info=True)

    # -- helpers -------------------------------------------------------------------------

    def _spawn(self, coroutine) -> None:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coroutine)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    def _is_idle(self) -> bool:
        if not self._started or not self._queue_drained or self._running or self._pass_scheduled:
            return False
        return not self._pending or not self._last_pass_started

    def _wake_idle_waiters(self) -> None:
        if self._is_idle():
            self._idle.set()


def get_or_create(settings: Settings) -> Any:
    """The cluster's scheduler actor, created on this node if it does not exist yet, and started."""
    actor_class = ray.remote(Scheduler)
    handle = actor_class.options(
        name=ACTOR_NAME, namespace=settings.ray_namespace, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_concurrency=1000,
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
    ).remote(settings)
    return handle


def start(handle: Any, *, timeout_s: float = 60.0) -> dict:
    """Start (or re-start after a Ray restart of the actor) and describe the scheduler."""
    return ray.get(handle.start.remote(), timeout=timeout_s)
