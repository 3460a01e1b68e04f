"""Every call the scheduler makes to reach job tasks: through the keeper of each node.

A job's task is launched by the keeper of its first node (pinned there with node affinity, or
in bundle 0 of a detached placement group for a multi-node job), asking Ray for exactly the
allocation (num_cpus, memory, num_gpus), so Ray's accounting and the allocation rows agree
(invariant 3).  ``max_retries=0``: a job is never silently run twice.  Stops and signals go to
the keeper, which delivers them over the attempt's control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import ray
from ray.util.placement_group import get_placement_group, remove_placement_group

from conductor import jobs, logs
from conductor.config import Settings
from conductor.exceptions import ConductorError
from conductor.executor import RunRequest
from conductor.keeper import handle as keeper_handle
from conductor.keeper.protocol import (PROTOCOL, Ended, KeeperInfo, KeeperState, Launch, conductor_version,
                                       placement_group_name)
from conductor.resources import Allocation, Node

log = logging.getLogger(__name__)

#: Most Ray workers a keeper warms up when it is first met, and how long each is held.
WARM_WORKERS_MAX, WARM_HOLD_S = 8, 0.5
#: How long a keeper may take to answer its first call (its worker process starts then).
HELLO_TIMEOUT_S = 60.0
#: After a retired keeper is killed: how often, and how many times, to look whether its name is free.
RETIRE_WAIT_S, RETIRE_WAIT_STEPS = 0.2, 50


@dataclass(frozen=True)
class Task:
    """An attempt as the scheduler knows it: its token and the keeper (node, incarnation) that runs it."""

    token: str
    node_id: str
    incarnation: str

    @property
    def restart_count(self) -> int:
        return int(self.token.split("-")[1])


def token_for(job: jobs.Job) -> str:
    """A new attempt's token: ``<job id>-<restart count>-<random>`` (unique host-wide)."""
    return f"{job.id}-{job.restart_count}-{uuid.uuid4().hex[:12]}"


def run_request(job: jobs.Job, allocation: Allocation, kill_wait_s: float, token: str = "") -> RunRequest:
    """What the executor needs for one attempt of ``job`` on ``allocation``."""
    spec = allocation.per_node
    warning = jobs.parse_warning_signal(job.spec.warning_signal) if job.spec.warning_signal else None
    return RunRequest(
        control=token, job_id=job.id, script=job.spec.script, working_dir=job.spec.working_dir,
        stdout_path=job.stdout_path, stderr_path=job.stderr_path, argv=job.spec.argv,
        time_limit_s=job.spec.time_limit_s,
        environment=jobs.job_environment(job, node_name=allocation.first.name, node_list=allocation.node_names,
                                         per_node=spec),
        kill_wait_s=kill_wait_s, memory_limit_mb=spec.memory_mb or None, gpus=spec.gpus, run_as=job.spec.run_as,
        append_output=job.spec.open_mode == "append",
        warning_signal=warning.signal if warning else None, warning_lead_s=warning.lead_s if warning else 60,
        warning_batch_only=warning.batch_only if warning else False)


class KeeperMismatch(Exception):
    """Keepers that speak another protocol hold jobs: the scheduler will not adopt (nor kill) them."""


class Dispatcher:
    """The keepers of the live nodes, and what the scheduler asks of them."""

    def __init__(self, settings: Settings) -> None:
        self._namespace = settings.ray_namespace
        self._kill_wait_s = settings.kill_wait_s
        self._warm = min(settings.worker_concurrency, WARM_WORKERS_MAX)
        self._keepers: dict[str, Any] = {}  # ray node id -> actor handle
        self._infos: dict[str, KeeperInfo] = {}

    # -- the keepers ----------------------------------------------------------------------

    async def ensure_keepers(self, nodes: Sequence[Node], *, all_must_answer: bool = False) -> None:
        """A keeper on every live node (created if missing); the keepers of nodes that left are forgotten.

        Raises KeeperMismatch naming the keepers (node, protocol, conductor version) that speak
        another protocol.  An idle keeper of another conductor version is replaced by this one's.
        A keeper that does not answer is left out (jobs are not placed on its node) and met again
        later; with ``all_must_answer`` (at start, when jobs may be running under it) that is an error.
        """
        alive = {node.ray_node_id: node for node in nodes}
        for node_id in [n for n in self._keepers if n not in alive]:
            self.drop(node_id)
        new = [node for node_id, node in alive.items() if node_id not in self._keepers]
        answers = await asyncio.gather(*(self._meet(node) for node in new), return_exceptions=True)
        silent = [f"{node.name} ({type(answer).__name__}: {answer})" for node, answer in zip(new, answers)
                  if isinstance(answer, BaseException)]
        if silent:
            log.warning("keepers that did not answer: %s", ", ".join(silent))
            if all_must_answer:
                raise ConductorError(f"the keepers of these nodes do not answer: {', '.join(silent)}; their "
                                     "running jobs cannot be adopted yet (the scheduler will try again)")
        infos = [answer for answer in answers if isinstance(answer, KeeperInfo)]
        mismatched = [f"{info.node_name} (protocol {info.protocol}, conductor {info.version})"
                      for info in infos if info is not None and info.protocol != PROTOCOL]
        if mismatched:
            raise KeeperMismatch(
                f"keepers speaking another protocol than this scheduler's ({PROTOCOL}) hold jobs on: "
                f"{', '.join(mismatched)}; run the conductor version they came with until their jobs end, "
                "or stop everything with `conductor down` first (see docs/RELIABILITY.md, upgrades)")

    async def _meet(self, node: Node) -> KeeperInfo | None:
        keeper = keeper_handle.get_or_create(self._namespace, node)
        info: KeeperInfo = await asyncio.wait_for(keeper.hello.remote(), HELLO_TIMEOUT_S)
        if info.protocol == PROTOCOL and info.version != conductor_version():
            state: KeeperState = await keeper.state.remote()
            if not state.running and not state.ended:  # idle: take this version's code
                log.info("replacing the idle keeper of %s (conductor %s)", node.name, info.version)
                ray.kill(keeper, no_restart=True)
                await asyncio.sleep(0.5)  # let the name go
                keeper = keeper_handle.get_or_create(self._namespace, node)
                info = await asyncio.wait_for(keeper.hello.remote(), HELLO_TIMEOUT_S)
        if info.protocol == PROTOCOL:
            self._keepers[node.ray_node_id], self._infos[node.ray_node_id] = keeper, info
            keeper.warm_up.remote(self._warm, WARM_HOLD_S)
        return info

    def drop(self, node_id: str) -> None:
        """Forget the keeper of a node that left (and free its name: it cannot come back there)."""
        keeper = self._keepers.pop(node_id, None)
        self._infos.pop(node_id, None)
        if keeper is not None:
            with contextlib.suppress(Exception):
                ray.kill(keeper, no_restart=True)

    def forget_keeper(self, node_id: str) -> None:
        """Stop using a keeper that failed (without killing it); the next ensure_keepers meets it again."""
        self._keepers.pop(node_id, None)
        self._infos.pop(node_id, None)

    def set_aside(self, node_id: str) -> tuple[Any, KeeperInfo] | None:
        """Stop using a keeper (as forget_keeper) and hand it over, to be retired (``retire``)."""
        keeper, info = self._keepers.pop(node_id, None), self._infos.pop(node_id, None)
        return (keeper, info) if keeper is not None and info is not None else None

    def take_back(self, node_id: str, keeper: Any, info: KeeperInfo) -> None:
        """Use again a keeper that was set aside and not retired."""
        self._keepers[node_id], self._infos[node_id] = keeper, info

    async def retire(self, keeper: Any, info: KeeperInfo) -> bool:
        """End a keeper that was set aside, if it holds nothing (no attempt running or waiting, no end
        unrecorded); whether it ended.  Returns once its name is free, so it can be made again at once."""
        state: KeeperState = await asyncio.wait_for(keeper.state.remote(), HELLO_TIMEOUT_S)
        if state.running or state.ended or state.info.incarnation != info.incarnation:
            return False
        ray.kill(keeper, no_restart=True)
        for _ in range(RETIRE_WAIT_STEPS):
            if not await asyncio.to_thread(_name_taken, keeper_handle.name_of(info.node_name), self._namespace):
                break
            await asyncio.sleep(RETIRE_WAIT_S)
        return True

    def has_keeper(self, node_id: str) -> bool:
        return node_id in self._keepers

    def info(self, node_id: str) -> KeeperInfo | None:
        return self._infos.get(node_id)

    def keeper_nodes(self) -> list[str]:
        return list(self._keepers)

    async def hello(self, node_id: str, timeout_s: float) -> KeeperInfo:
        """The keeper's identity now (a new incarnation after Ray restarted it); remembered."""
        info = await asyncio.wait_for(self._keepers[node_id].hello.remote(), timeout_s)
        self._infos[node_id] = info
        return info

    # -- jobs -----------------------------------------------------------------------------

    def task_for(self, job: jobs.Job, allocation: Allocation) -> tuple[Task, Launch]:
        """A new attempt of ``job`` on ``allocation``: its Task, and what its keeper is to launch."""
        node_id = allocation.first.ray_node_id
        token = token_for(job)
        launch = Launch(job.id, token, f"{job.id}:{job.spec.name}", run_request(job, allocation, self._kill_wait_s, token),
                        allocation.per_node, tuple(node.ray_node_id for node in allocation.nodes))
        return Task(token, node_id, self._infos[node_id].incarnation), launch

    async def launch(self, node_id: str, launches: Sequence[Launch]) -> dict[int, str]:
        """The keeper of ``node_id`` submits the attempts' tasks; returns those Ray refused (job id -> why)."""
        return await self._keepers[node_id].launch.remote(list(launches))

    def stop(self, task: Task | None, intent: str) -> None:
        """Ask the attempt's keeper to stop it (its end comes back with ``intent``)."""
        if task is not None and task.node_id in self._keepers:
            self._keepers[task.node_id].stop.remote(int(task.token.split("-")[0]), task.token, intent)

    def signal(self, task: Task | None, signum: int) -> None:
        if task is not None and task.node_id in self._keepers:
            self._keepers[task.node_id].signal.remote(int(task.token.split("-")[0]), task.token, signum)

    async def state(self, node_id: str) -> KeeperState:
        return await self._keepers[node_id].state.remote()

    async def ended(self, node_id: str, timeout_s: float) -> list[Ended]:
        return await self._keepers[node_id].ended.remote(timeout_s)

    def forget(self, node_id: str, tokens: Sequence[str]) -> None:
        if tokens and node_id in self._keepers:
            self._keepers[node_id].forget.remote(list(tokens))

    async def reap(self, job: jobs.Job, node_id: str) -> None:
        """Kill what a dead attempt of ``job`` left on its node, through that node's keeper."""
        if node_id not in self._keepers:
            return  # a node that is gone took its processes with it
        try:
            killed = await asyncio.wait_for(
                self._keepers[node_id].reap.remote(job.id, (job.stdout_path, job.stderr_path)), 30)
        except Exception as exc:  # noqa: BLE001 - the keeper is restarting, or the node is going
            log.warning("could not reap job %s: %s", job.id, exc, extra=logs.job(job.id))
            return
        if killed:
            log.warning("killed %d leftover processes of job %s", killed, job.id, extra=logs.job(job.id))

    @staticmethod
    def remove_placement_group(job_id: int) -> None:
        """A multi-node job's group, left behind when its keeper died (the keeper removes it otherwise)."""
        with contextlib.suppress(Exception):
            remove_placement_group(get_placement_group(placement_group_name(job_id)))


def _name_taken(name: str, namespace: str) -> bool:
    """Whether a live actor still holds ``name`` (a blocking call to the GCS: run it in a thread)."""
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True
