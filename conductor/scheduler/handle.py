"""The cluster's one scheduler actor, from outside it: its name, get-or-create, start, status.

What ``conductor up``/``worker`` and the API's health checks use; the actor itself is
``conductor.scheduler.actor`` (imported only when it is created, so a health check stays light).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from conductor.config import Settings
from conductor.keeper.protocol import KeeperInfo
from conductor.metrics import SchedulerFigures
from conductor.resources import Node, Resources

ACTOR_NAME = "conductor-scheduler"
#: How long a health check waits for the scheduler actor to answer.
ANSWER_TIMEOUT_S = 2.0
NOT_CHECKED = "not checked (this API runs without a scheduler of its own)"


@dataclass(frozen=True)
class Status:
    """The scheduler's summary, for banners and health checks."""

    worker_concurrency: int
    nodes: tuple[Node, ...]
    used: dict[str, Resources] = field(default_factory=dict)  #: ray_node_id -> what conductor's jobs hold
    pending: int = 0
    running: int = 0
    queue: str = ""
    started_now: bool = False  #: this start() call started it (the caller owns it)
    keepers: tuple[KeeperInfo, ...] = ()  #: the keepers of the live nodes (node, protocol, version)
    figures: SchedulerFigures | None = None  #: passes, latencies, loop lag and errors since the actor began

    def node(self, ray_node_id: str) -> Node | None:
        return next((node for node in self.nodes if node.ray_node_id == ray_node_id), None)


def get_or_create(settings: Settings) -> Any:
    """The cluster's scheduler actor, created on this node if it does not exist yet (not started)."""
    from conductor.scheduler.actor import Scheduler

    return ray.remote(Scheduler).options(
        name=ACTOR_NAME, namespace=settings.ray_namespace, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_concurrency=1000,
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
    ).remote(settings)


def start(handle: Any, *, timeout_s: float = 60.0) -> Status:
    """Start (or re-start after a Ray restart of the actor) and describe the scheduler."""
    return ray.get(handle.start.remote(), timeout=timeout_s)


def status(settings: Settings, *, check: bool) -> tuple[bool | None, str]:
    """(True, summary) when the scheduler answers; (False, why) when it does not or Ray is gone;
    (None, NOT_CHECKED) when this API was started without one (``check`` false)."""
    answered, found = describe(settings, check=check)
    if not isinstance(found, Status):
        return answered, found
    return True, f"ok: {len(found.nodes)} node(s), {found.pending} pending, {found.running} running"


def describe(settings: Settings, *, check: bool) -> tuple[bool | None, Status | str]:
    """(True, the scheduler's Status) when it answers within ANSWER_TIMEOUT_S; else as ``status`` says."""
    if not check:
        return None, NOT_CHECKED
    if not ray.is_initialized():
        return False, "unavailable: this process lost its Ray connection"
    try:
        actor = ray.get_actor(ACTOR_NAME, namespace=settings.ray_namespace)
        info: Status = ray.get(actor.describe.remote(), timeout=ANSWER_TIMEOUT_S)
    except Exception as exc:  # any Ray failure means: not available now
        return False, f"unavailable: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}"
    return True, info
