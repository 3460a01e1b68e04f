"""Every Ray call the scheduler makes for jobs: launching their tasks, cancelling, signalling,
reaping leftovers, warming workers, and reading how a task ended.

A one-node job's task is pinned to its node with node affinity.  A multi-node job gets a
placement group, one bundle per allocated node (each pinned by Ray's node-id label, strict
spread), which holds the other nodes' resources while the script runs in bundle 0.  Each task
asks Ray for exactly its allocation (num_cpus, memory, num_gpus), so Ray's accounting and the
allocation rows agree (invariant 3).  ``max_retries=0``: a job is never silently run twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import ray
from ray.util.placement_group import NODE_ID_LABEL_KEY, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from conductor import executor, jobs
from conductor.executor import EndCause, RunReport, RunRequest, control, orphans
from conductor.resources import Allocation, Resources

log = logging.getLogger(__name__)

#: Most Ray workers warmed up at start (each held this long so they start side by side).
WARM_WORKERS_MAX, WARM_HOLD_S, WARM_TIMEOUT_S = 8, 0.5, 30.0
#: Time allowed for a reap task to be scheduled on its node, on top of orphans.REAP_TIMEOUT_S.
REAP_START_S = 10.0
_MIB = 1024 * 1024


@dataclass
class Task:
    """A launched job task: its result, its control token, and the placement group of a multi-node job."""

    ref: Any
    token: str
    placement_group: Any = None


def run_request(job: jobs.Job, allocation: Allocation, kill_wait_s: float, token: str = "") -> RunRequest:
    """What the executor needs for one attempt of ``job`` on ``allocation``."""
    spec = allocation.per_node
    return RunRequest(control=token,
        job_id=job.id, script=job.spec.script, working_dir=job.spec.working_dir, stdout_path=job.stdout_path,
        stderr_path=job.stderr_path, argv=job.spec.argv, time_limit_s=job.spec.time_limit_s,
        environment=jobs.job_environment(job, node_name=allocation.first.name, node_list=allocation.node_names),
        kill_wait_s=kill_wait_s, memory_limit_mb=spec.memory_mb or None, gpus=spec.gpus, run_as=job.spec.run_as)


def ray_resources(per_node: Resources) -> dict[str, Any]:
    """A task's resource options for Ray (memory in bytes; none asked for zero)."""
    return {"num_cpus": per_node.cpus, "memory": per_node.memory_mb * _MIB if per_node.memory_mb else None,
            "num_gpus": per_node.gpus or None}


def _bundle(per_node: Resources) -> dict[str, float]:
    return {"CPU": per_node.cpus, **({"memory": per_node.memory_mb * _MIB} if per_node.memory_mb else {}),
            **({"GPU": per_node.gpus} if per_node.gpus else {})}


class Dispatcher:
    """Launches and controls job tasks from inside the scheduler actor."""

    def __init__(self, kill_wait_s: float) -> None:
        self._kill_wait_s = kill_wait_s
        self._run_job = ray.remote(executor.run_job)

    def launch(self, job: jobs.Job, allocation: Allocation) -> Task:
        """Submit the job's task (Ray refusing it raises, and nothing is left behind)."""
        group = None
        if len(allocation.nodes) > 1:
            group = placement_group([_bundle(allocation.per_node) for _ in allocation.nodes],
                                    strategy="STRICT_SPREAD", name=f"conductor-job-{job.id}",
                                    bundle_label_selector=[{NODE_ID_LABEL_KEY: n.ray_node_id} for n in allocation.nodes])
            strategy: Any = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
        else:
            strategy = NodeAffinitySchedulingStrategy(allocation.first.ray_node_id, soft=False)
        token = f"{job.id}-{job.restart_count}-{uuid.uuid4().hex[:12]}"
        try:
            ref = self._run_job.options(
                name=f"{job.id}:{job.spec.name}", max_retries=0, scheduling_strategy=strategy,
                **ray_resources(allocation.per_node)).remote(run_request(job, allocation, self._kill_wait_s, token))
        except Exception:
            if group is not None:
                remove_placement_group(group)
            raise
        return Task(ref, token, group)

    @staticmethod
    def cancel(task: Task | None) -> None:
        """Ask the task to stop (the executor terminates the job's process group)."""
        if task is not None:
            try:
                ray.cancel(task.ref)
            except Exception:  # its worker is gone (with its node): the task ends by itself
                log.debug("cancel of %s failed", task.ref, exc_info=True)

    @staticmethod
    def release(task: Task | None) -> None:
        """Give back what the task held besides itself (a multi-node job's placement group)."""
        if task is not None and task.placement_group is not None:
            remove_placement_group(task.placement_group)

    @staticmethod
    def signal(allocation: Allocation, task: Task | None, signum: int) -> None:
        """Send a signal to the job's process group on its node, through a tiny pinned task."""
        if task is None:
            return
        ray.remote(control.send).options(
            num_cpus=0, max_retries=0, name=f"{task.token}:signal",
            scheduling_strategy=NodeAffinitySchedulingStrategy(allocation.first.ray_node_id, soft=False),
        ).remote(task.token, control.Command(control.SIGNAL, signum))

    @staticmethod
    async def report(task: Task) -> RunReport:
        """How the task ended: the executor's report, or Ray's failure of the task as an EndCause."""
        try:
            return await task.ref
        except Exception as error:  # a Ray-level failure is data on the job row
            return report_of_error(error)

    @staticmethod
    def warm_up(worker_concurrency: int) -> list:
        """Start worker processes before the first jobs need them (refs to wait for)."""
        warm = ray.remote(executor.warm_up).options(num_cpus=0, max_retries=0, name="conductor-warm-up")
        return [warm.remote(WARM_HOLD_S) for _ in range(min(worker_concurrency, WARM_WORKERS_MAX))]

    @staticmethod
    async def reap(attempts: Sequence[tuple[jobs.Job, str]]) -> None:
        """Kill what dead attempts left running, each on its node (by Ray node id), and wait for it."""
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


def report_of_error(error: Exception) -> RunReport:
    """A Ray-level failure of a job's task (not of its script) as a RunReport."""
    if isinstance(error, ray.exceptions.TaskCancelledError):
        return RunReport(EndCause.STOPPED)
    if isinstance(error, ray.exceptions.NodeDiedError):
        return RunReport(EndCause.NODE_DIED)
    if isinstance(error, (ray.exceptions.WorkerCrashedError, ray.exceptions.ActorDiedError)):
        return RunReport(EndCause.WORKER_DIED)
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[-1]
    return RunReport(EndCause.SYSTEM_ERROR, detail=first_line)


def may_leave_processes(report: RunReport) -> bool:
    """Whether the job's processes may outlive this end of its task.

    The executor cleans up after every end it reports; a task cancelled before it started left
    nothing, and a dead node took its processes with it.  A worker that died without reporting
    (SIGKILLed, say) ran no clean-up (see conductor.executor.orphans).
    """
    return report.cause in (EndCause.WORKER_DIED, EndCause.SYSTEM_ERROR)
