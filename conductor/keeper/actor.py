"""The keeper actor: its node's job tasks, owned here so that they outlive the scheduler.

Detached and named, 0 CPUs, restarted by Ray when its process dies (``max_restarts=-1``).  Ray
fate-shares a task with its owner, so the tasks a keeper submitted end when the keeper's
process dies: a restarted keeper has a new ``incarnation`` and knows nothing of them, and the
scheduler ends those jobs NODE_FAIL (or requeues them), naming the keeper.  Nothing here is
written to disk: what a keeper holds dies with it, as the tasks do.

Everything runs on the actor's event loop; no method blocks it (reaping runs in a thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray
from ray.util.placement_group import NODE_ID_LABEL_KEY, get_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from conductor import executor, logs
from conductor.executor import EndCause, RunReport, control, orphans
from conductor.keeper.protocol import (PROTOCOL, Ended, KeeperInfo, KeeperState, Launch, conductor_version,
                                       placement_group_name)
from conductor.resources import Resources

log = logging.getLogger(__name__)

#: How often a stop is offered again to an attempt that has not opened its channel yet.
DELIVERY_RETRY_S = 0.02
#: Launch pacing: at most ``fresh_max`` attempts per node are in their first FRESH_S after being
#: handed to Ray; more wait here, for milliseconds.  A burst of short jobs then runs on the worker
#: processes that are already warm, instead of Ray starting one per free slot (a worker costs
#: about half a second of CPU to start, far more than a short job).  An attempt stops counting
#: when it ends or after FRESH_S, so longer jobs still fill every slot, FRESH_S apart at most.
FRESH_S = 0.05
_MIB = 1024 * 1024


@dataclass
class _Attempt:
    launch: Launch
    ref: Any = None  #: None while it waits for its turn (launch pacing): not in Ray yet
    placement_group: Any = None
    intent: str = "none"
    stopping: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


def ray_resources(per_node: Resources) -> dict[str, Any]:
    """A task's resource options for Ray (memory in bytes; none asked for zero)."""
    return {"num_cpus": per_node.cpus, "memory": per_node.memory_mb * _MIB if per_node.memory_mb else None,
            "num_gpus": per_node.gpus or None}


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


class Keeper:
    """The actor's body; ``conductor.keeper.handle.get_or_create`` makes the one of a node."""

    def __init__(self, node_name: str) -> None:
        self._info = KeeperInfo(PROTOCOL, conductor_version(), node_name, ray.get_runtime_context().get_node_id(),
                                uuid.uuid4().hex, os.getpid())
        self._run_job = ray.remote(executor.run_job)
        self._attempts: dict[int, _Attempt] = {}
        self._ended: dict[int, Ended] = {}
        self._changed: asyncio.Event | None = None
        self._waiting: collections.deque[_Attempt] = collections.deque()  # launched, not yet handed to Ray
        self._fresh: dict[int, float] = {}  # job id -> when its task was handed to Ray (monotonic)
        self._fresh_max = max(4, 2 * (os.cpu_count() or 1))
        self._pacing: asyncio.TimerHandle | None = None

    # -- what it is and holds ---------------------------------------------------------------

    async def hello(self) -> KeeperInfo:
        return self._info

    async def state(self) -> KeeperState:
        return KeeperState(self._info, {job_id: a.launch.token for job_id, a in self._attempts.items()},
                           tuple(self._ended.values()))

    # -- launching -------------------------------------------------------------------------

    async def launch(self, launches: Sequence[Launch]) -> dict[int, str]:
        """Take each attempt; returns the ones Ray refused at once (job id -> why).

        Attempts beyond the launch pacing's allowance wait here for their turn (FRESH_S); one
        that Ray refuses then ends LAUNCH_FAILED, reported as any other end.
        """
        refused = {}
        for launch in launches:
            running = self._attempts.get(launch.job_id)
            if running is not None:  # launched twice (a retried call): once is enough
                if running.launch.token != launch.token:
                    refused[launch.job_id] = f"an attempt {running.launch.token} of the job still runs here"
                continue
            attempt = self._attempts[launch.job_id] = _Attempt(launch)
            self._waiting.append(attempt)
        refused.update({attempt.launch.job_id: why for attempt, why in self._hand_to_ray()})
        return refused

    def _hand_to_ray(self) -> list[tuple[_Attempt, str]]:
        """Submit waiting attempts while the pacing allows; returns those Ray refused, with why."""
        now = time.monotonic()
        for job_id in [job_id for job_id, since in self._fresh.items() if now - since >= FRESH_S]:
            del self._fresh[job_id]
        refused = []
        while self._waiting and len(self._fresh) < self._fresh_max:
            attempt = self._waiting.popleft()
            if self._attempts.get(attempt.launch.job_id) is not attempt:  # stopped while it waited
                continue
            try:
                self._start(attempt)
            except Exception as error:  # a Ray-side refusal is data for the job's row
                log.exception("job %s could not be launched", attempt.launch.job_id,
                              extra=logs.job(attempt.launch.job_id))
                del self._attempts[attempt.launch.job_id]
                refused.append((attempt, f"{type(error).__name__}: {error}"))
                continue
            self._fresh[attempt.launch.job_id] = now
        if self._waiting and self._pacing is None:
            wait_s = max(0.001, FRESH_S - (now - min(self._fresh.values(), default=now)))
            self._pacing = asyncio.get_running_loop().call_later(wait_s, self._pace)
        return refused

    def _pace(self) -> None:
        """Hand on what waits (the pacing timer, or an end that freed a turn)."""
        if self._pacing is not None:
            self._pacing.cancel()
            self._pacing = None
        for attempt, why in self._hand_to_ray():
            self._end(attempt, RunReport(EndCause.LAUNCH_FAILED, detail=why))

    def _end(self, attempt: _Attempt, report: RunReport) -> None:
        launch = attempt.launch
        if self._attempts.get(launch.job_id) is attempt:
            del self._attempts[launch.job_id]
        self._ended[launch.job_id] = Ended(launch.job_id, launch.token, report, attempt.intent)
        attempt.done.set()
        self._event().set()

    def _start(self, attempt: _Attempt) -> None:
        launch = attempt.launch
        group = self._placement_group(launch) if len(launch.nodes) > 1 else None
        strategy: Any = (PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0) if group is not None
                         else NodeAffinitySchedulingStrategy(launch.nodes[0], soft=False))
        try:
            attempt.ref = self._run_job.options(name=launch.name, max_retries=0, scheduling_strategy=strategy,
                                                **ray_resources(launch.per_node)).remote(launch.request)
        except Exception:
            if group is not None:
                remove_placement_group(group)
            raise
        attempt.placement_group = group
        asyncio.get_running_loop().create_task(self._watch(attempt))

    @staticmethod
    def _placement_group(launch: Launch) -> Any:
        """One bundle per node, each pinned to its node; detached, so it outlives its creator."""
        name = placement_group_name(launch.job_id)
        with contextlib.suppress(Exception):  # a group an earlier attempt left (its keeper died)
            remove_placement_group(get_placement_group(name))
        per_node = launch.per_node
        bundle = {"CPU": per_node.cpus, **({"memory": per_node.memory_mb * _MIB} if per_node.memory_mb else {}),
                  **({"GPU": per_node.gpus} if per_node.gpus else {})}
        return placement_group([dict(bundle) for _ in launch.nodes], strategy="STRICT_SPREAD", name=name,
                               lifetime="detached",
                               bundle_label_selector=[{NODE_ID_LABEL_KEY: node_id} for node_id in launch.nodes])

    async def _watch(self, attempt: _Attempt) -> None:
        try:
            # Through a concurrent future, not ``await ref``: awaiting ObjectRefs directly grew the
            # keeper's memory by ~28 KB per job here (ray-project/ray#45895 saw the same).
            report = await asyncio.wrap_future(attempt.ref.future())
        except Exception as error:  # noqa: BLE001 - Ray's failure of the task is the report
            report = report_of_error(error)
        if attempt.placement_group is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(attempt.placement_group)
        self._end(attempt, report)
        if self._fresh.pop(attempt.launch.job_id, None) is not None and self._waiting:
            self._pace()  # it ended within its first FRESH_S: its turn goes to the next

    # -- control ---------------------------------------------------------------------------

    async def stop(self, job_id: int, token: str, intent: str) -> bool:
        """Stop the attempt (SIGTERM to its group, KillWait, SIGKILL), remembering why; False if unknown."""
        attempt = self._attempts.get(job_id)
        if attempt is None or attempt.launch.token != token:
            return False
        attempt.intent = intent
        if attempt.ref is None:  # still waiting for its turn: it never reaches Ray
            self._end(attempt, RunReport(EndCause.STOPPED))
            return True
        if not attempt.stopping:
            attempt.stopping = True
            asyncio.get_running_loop().create_task(self._deliver_stop(attempt))
        return True

    async def _deliver_stop(self, attempt: _Attempt) -> None:
        """Offer the stop until the attempt takes it or ends; a task not started yet is cancelled in Ray."""
        cancelled = False
        while not attempt.done.is_set():
            if control.send(attempt.launch.token, control.Command(control.STOP)):
                return
            if not cancelled:  # not listening yet: maybe still queued in Ray, where a cancel removes it
                with contextlib.suppress(Exception):
                    ray.cancel(attempt.ref)
                cancelled = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(attempt.done.wait(), DELIVERY_RETRY_S)

    async def signal(self, job_id: int, token: str, signum: int) -> bool:
        """Send ``signum`` to the attempt's process group; False when it does not run (yet)."""
        attempt = self._attempts.get(job_id)
        if attempt is None or attempt.launch.token != token:
            return False
        return control.send(token, control.Command(control.SIGNAL, signum))

    # -- ends ------------------------------------------------------------------------------

    async def ended(self, timeout_s: float) -> list[Ended]:
        """The ended attempts not yet forgotten; waits up to ``timeout_s`` for one when there are none."""
        if not self._ended:
            changed = self._event()
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout_s)
        return list(self._ended.values())

    async def forget(self, tokens: Sequence[str]) -> None:
        """The scheduler has recorded these ends: let them go."""
        wanted = set(tokens)
        for job_id in [job_id for job_id, ended in self._ended.items() if ended.token in wanted]:
            del self._ended[job_id]

    async def reap(self, job_id: int, output_paths: tuple[str, ...]) -> int:
        """Kill what a dead attempt of the job left on this node (conductor.executor.orphans)."""
        return await asyncio.to_thread(orphans.reap, job_id, output_paths)

    async def warm_up(self, count: int, hold_s: float) -> int:
        """Start ``count`` worker processes for this keeper's tasks before jobs need them."""
        warm = ray.remote(executor.warm_up).options(
            num_cpus=0, max_retries=0, name="conductor-warm-up",
            scheduling_strategy=NodeAffinitySchedulingStrategy(self._info.ray_node_id, soft=False))
        refs = [warm.remote(hold_s) for _ in range(count)]
        done, _ = await asyncio.wait([asyncio.ensure_future(ref) for ref in refs], timeout=60)
        return len(done)

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed
