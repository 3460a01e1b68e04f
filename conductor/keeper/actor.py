"""The keeper actor: its node's job tasks, owned here so that they outlive the scheduler.

Detached and named, 0 CPUs, restarted by Ray when its process dies (``max_restarts=-1``).  Ray
fate-shares a task with its owner, so the tasks a keeper submitted end when the keeper's
process dies: a restarted keeper has a new ``incarnation`` and knows nothing of them, and the
scheduler ends those jobs NODE_FAIL (or requeues them), naming the keeper.  Nothing here is
written to disk: what a keeper holds dies with it, as the tasks do.

A single-node attempt runs in a *lane* (conductor.executor.lane): a Ray task that, when its job
ends, asks the keeper over a local socket for the next attempt of the same shape waiting here
(launch pacing holds a burst's attempts back for milliseconds).  A burst of short jobs then costs
Ray a task per lane, not per job.  A multi-node attempt is one task of its own in its placement
group.

Everything runs on the actor's event loop; no method blocks it (reaping runs in a thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import logging
import os
import pickle
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray
from ray.util.placement_group import NODE_ID_LABEL_KEY, get_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from conductor import executor, logs
from conductor.executor import EndCause, RunReport, control, lane, orphans
from conductor.keeper.protocol import (PROTOCOL, Ended, KeeperInfo, KeeperState, Launch, conductor_version,
                                       placement_group_name)
from conductor.resources import Resources

log = logging.getLogger(__name__)

#: How often a stop is offered again to an attempt that has not opened its channel yet.
DELIVERY_RETRY_S = 0.02
#: Launch pacing: at most ``fresh_max`` attempts per node are in their first FRESH_S after being
#: handed to Ray or to a lane; more wait here, for milliseconds, and a lane whose job ends takes
#: the next of its shape.  A burst of short jobs then runs on a few lanes and warm worker
#: processes, instead of Ray starting a task and a worker per free slot (a worker costs about half
#: a second of CPU to start, far more than a short job).  An attempt stops counting when it ends or
#: after FRESH_S, so longer jobs still fill every slot, FRESH_S apart at most.
FRESH_S = 0.05
#: A lane's first attempt counts as fresh until the lane says it has started (then FRESH_S more),
#: or at most this long: on a loaded node Ray may take longer than FRESH_S to start a task.
STARTING_MAX_S = 3.0
#: An attempt a lane has begun counts as fresh for a few times the recent short runs in lanes
#: (SHORT_RUN_FACTOR times their moving average), between FRESH_S and LANE_FRESH_MAX_S: on a
#: loaded node a short job takes longer than FRESH_S, and starting another task (and worker) for
#: the jobs behind it then only adds load.  Runs longer than LANE_FRESH_MAX_S do not count.
LANE_FRESH_MAX_S = 0.5
SHORT_RUN_FACTOR = 3.0
_MIB = 1024 * 1024


@dataclass
class _Attempt:
    launch: Launch
    ref: Any = None  #: its task (its lane's, or its own); None while it waits for its turn (launch pacing)
    placement_group: Any = None
    lane: _Lane | None = None
    intent: str = "none"
    stopping: bool = False
    began_s: float = 0.0  #: when its lane began it (monotonic): the lane said it started, or took it
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Lane:
    """One lane task: the attempts of one shape it runs in turn, one at a time (``current``)."""

    lane_id: str
    secret: str
    shape: Resources
    first_token: str  #: the attempt it was started for (the only one it may run while still queued in Ray)
    current: _Attempt | None = None
    ref: Any = None
    cancelled: bool = False  #: Ray was asked to cancel it: it gets no further attempt


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
        self._run_lane = ray.remote(lane.run_lane)
        self._lanes: dict[str, _Lane] = {}
        self._lane_server: asyncio.AbstractServer | None = None
        self._counts = {"tasks": 0, "handed_over": 0}  # Ray tasks submitted; attempts a running lane took
        self._attempts: dict[int, _Attempt] = {}
        self._ended: dict[int, Ended] = {}
        self._changed: asyncio.Event | None = None
        self._waiting: collections.deque[_Attempt] = collections.deque()  # launched, not yet handed to Ray
        self._fresh: dict[int, float] = {}  # job id -> until when it counts as fresh (monotonic)
        self._fresh_max = max(4, 2 * (os.cpu_count() or 1))
        self._short_run_s = 0.0  # moving average of the short runs in lanes (LANE_FRESH_MAX_S)
        self._pacing: asyncio.TimerHandle | None = None

    # -- what it is and holds ---------------------------------------------------------------

    async def hello(self) -> KeeperInfo:
        return self._info

    async def counts(self) -> dict[str, int]:
        """Ray tasks this keeper submitted, and attempts it handed over to a running lane instead."""
        return dict(self._counts)

    async def state(self) -> KeeperState:
        return KeeperState(self._info, {job_id: a.launch.token for job_id, a in self._attempts.items()},
                           tuple(self._ended.values()))

    # -- launching -------------------------------------------------------------------------

    async def launch(self, launches: Sequence[Launch]) -> dict[int, str]:
        """Take each attempt; returns the ones Ray refused at once (job id -> why).

        Attempts beyond the launch pacing's allowance wait here for their turn (FRESH_S); one
        that Ray refuses then ends LAUNCH_FAILED, reported as any other end.
        """
        await self._serve_lanes()
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
        for job_id in [job_id for job_id, until in self._fresh.items() if now >= until]:
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
            # A lane says when it has started (FRESH_S counts from then); another task counts from now.
            self._fresh[attempt.launch.job_id] = now + (STARTING_MAX_S if attempt.lane is not None else FRESH_S)
        if self._waiting and self._pacing is None:
            wait_s = max(0.001, min(self._fresh.values(), default=now + FRESH_S) - now)
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
        if len(launch.nodes) > 1:
            group = self._placement_group(launch)
            try:
                attempt.ref = self._run_job.options(
                    name=launch.name, max_retries=0, **ray_resources(launch.per_node),
                    scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0),
                ).remote(launch.request)
            except Exception:
                remove_placement_group(group)
                raise
            attempt.placement_group = group
            self._counts["tasks"] += 1
            asyncio.get_running_loop().create_task(self._watch(attempt))
            return
        new = _Lane(uuid.uuid4().hex, secrets.token_hex(16), launch.per_node, launch.token, current=attempt)
        new.ref = self._run_lane.options(
            name=launch.name, max_retries=0, **ray_resources(launch.per_node),
            scheduling_strategy=NodeAffinitySchedulingStrategy(launch.nodes[0], soft=False),
        ).remote(lane.address(self._info.incarnation), new.lane_id, new.secret, launch.request)
        attempt.ref, attempt.lane = new.ref, new
        self._lanes[new.lane_id] = new
        self._counts["tasks"] += 1
        asyncio.get_running_loop().create_task(self._watch_lane(new))

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
        """A multi-node attempt's own task, to its end."""
        try:
            # Through a concurrent future, not ``await ref``: awaiting ObjectRefs directly grew the
            # keeper's memory by ~28 KB per job here (ray-project/ray#45895 saw the same).
            report = await asyncio.wrap_future(attempt.ref.future())
        except Exception as error:  # noqa: BLE001 - Ray's failure of the task is the report
            report = report_of_error(error)
        if attempt.placement_group is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(attempt.placement_group)
        self._finished(attempt, report)

    async def _watch_lane(self, watched: _Lane) -> None:
        """A lane's task, to its end: what it ran last ends with the task's result, if not told already."""
        try:
            result = await asyncio.wrap_future(watched.ref.future())
        except Exception as error:  # noqa: BLE001 - Ray's failure of the task is the report
            result = error
        self._lanes.pop(watched.lane_id, None)
        attempt, watched.current = watched.current, None
        if attempt is None:  # its last report came over the socket
            return
        if isinstance(result, Exception):
            self._finished(attempt, report_of_error(result))
        elif result is not None and result[0] == attempt.launch.token:
            self._finished(attempt, result[1])
        else:  # handed over, but the lane never heard of it (its ask's answer was lost): it never ran
            attempt.ref = attempt.lane = None
            self._waiting.appendleft(attempt)
            self._pace()

    def _finished(self, attempt: _Attempt, report: RunReport) -> None:
        self._end(attempt, report)
        if self._fresh.pop(attempt.launch.job_id, None) is not None and self._waiting:
            self._pace()  # it ended within its first FRESH_S: its turn goes to the next

    # -- lanes -----------------------------------------------------------------------------

    async def _serve_lanes(self) -> None:
        """Listen for lanes' asks (once); without the socket, every lane runs one attempt."""
        if self._lane_server is None:
            try:
                self._lane_server = await asyncio.start_unix_server(
                    self._lane_asked, path=lane.address(self._info.incarnation))
            except OSError as error:
                log.warning("lanes are off on this node: the keeper cannot listen for them (%s)", error)
                self._lane_server = False  # type: ignore[assignment] - tried once

    async def _lane_asked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One ask of a lane: record how its attempt ended, answer with its next attempt or None."""
        try:
            if lane.peer_uid(writer.get_extra_info("socket")) != os.getuid():
                return
            length = lane.frame_length(await reader.readexactly(4))
            ask = pickle.loads(await reader.readexactly(length))
            if not isinstance(ask, lane.Ask):
                return
            writer.write(lane.frame(self._next_for(ask)))
            await writer.drain()
        except (OSError, EOFError, asyncio.IncompleteReadError, pickle.UnpicklingError) as error:
            log.debug("a lane's ask failed: %s", error)  # the lane then ends and reports through Ray
        finally:
            writer.close()

    def _next_for(self, ask: lane.Ask) -> Any:
        """End the lane's attempt with its report; hand it the next waiting attempt of its shape."""
        asking = self._lanes.get(ask.lane_id)
        if asking is None or not hmac.compare_digest(asking.secret, ask.secret):
            return None
        ended = asking.current
        if ended is None or ended.launch.token != ask.token:
            return None
        now = time.monotonic()
        if ask.report is None:  # the lane has started its first attempt: fresh from now
            ended.began_s = now
            if ended.launch.job_id in self._fresh:
                self._fresh[ended.launch.job_id] = now + self._lane_fresh_s()
            return None
        if ended.began_s and (run_s := now - ended.began_s) < LANE_FRESH_MAX_S:
            self._short_run_s = run_s if not self._short_run_s else 0.8 * self._short_run_s + 0.2 * run_s
        following = None if asking.cancelled else self._take_waiting(asking.shape)
        asking.current = following
        if following is not None:  # it is fresh too: the lane keeps its turn
            following.ref, following.lane, following.began_s = asking.ref, asking, now
            self._fresh[following.launch.job_id] = now + self._lane_fresh_s()
            self._counts["handed_over"] += 1
        self._finished(ended, ask.report)
        return following.launch.request if following is not None else None

    def _lane_fresh_s(self) -> float:
        return min(LANE_FRESH_MAX_S, max(FRESH_S, SHORT_RUN_FACTOR * self._short_run_s))

    def _take_waiting(self, shape: Resources) -> _Attempt | None:
        """The first attempt waiting for its turn that a lane of ``shape`` can run."""
        for attempt in self._waiting:
            launch = attempt.launch
            if len(launch.nodes) == 1 and launch.per_node == shape and self._attempts.get(launch.job_id) is attempt:
                self._waiting.remove(attempt)
                return attempt
        return None

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
            if not cancelled and self._may_cancel(attempt):  # not listening: maybe still queued in Ray
                with contextlib.suppress(Exception):
                    ray.cancel(attempt.ref)
                cancelled = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(attempt.done.wait(), DELIVERY_RETRY_S)

    @staticmethod
    def _may_cancel(attempt: _Attempt) -> bool:
        """Whether a Ray cancel of the attempt's task hits that attempt and nothing else.

        A lane's task may be queued in Ray only for its first attempt; a later one is handed over
        to a running lane, which listens on the attempt's channel within moments.  Once cancelled,
        a lane is given nothing more, so the interrupt cannot land in a later attempt.
        """
        if attempt.lane is None:
            return True
        if attempt.lane.first_token != attempt.launch.token:
            return False
        attempt.lane.cancelled = True
        return True

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
