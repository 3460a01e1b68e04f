"""What a scheduler and a keeper exchange.  PROTOCOL changes whenever these shapes or their meaning do.

A scheduler adopts the jobs of a keeper only when their protocols match; any other keeper is
reported at start (its node, protocol and conductor version) and its jobs are left alone.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

from conductor.executor import RunReport, RunRequest
from conductor.resources import Resources

PROTOCOL = 1
#: The name of a job's placement group (multi-node jobs), detached so it outlives the scheduler.
PLACEMENT_GROUP_PREFIX = "conductor-job-"


@dataclass(frozen=True)
class Launch:
    """Start one attempt: ``per_node`` on each of ``nodes`` (Ray node ids; the first is the keeper's)."""

    job_id: int
    token: str  #: the attempt's identity (and its control channel's name)
    name: str  #: the Ray task's name, ``<id>:<job name>``
    request: RunRequest
    per_node: Resources
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Ended:
    """How an attempt ended, and what the scheduler had asked of it (kept until recorded)."""

    job_id: int
    token: str
    report: RunReport
    intent: str = "none"


@dataclass(frozen=True)
class KeeperInfo:
    """Who a keeper is: a new ``incarnation`` after every (re)start of its actor."""

    protocol: int
    version: str
    node_name: str
    ray_node_id: str
    incarnation: str
    pid: int


@dataclass(frozen=True)
class KeeperState:
    """What a keeper holds: attempts running (job id -> token) and ended attempts not yet recorded."""

    info: KeeperInfo
    running: dict[int, str] = field(default_factory=dict)
    ended: tuple[Ended, ...] = ()


def placement_group_name(job_id: int) -> str:
    return f"{PLACEMENT_GROUP_PREFIX}{job_id}"


def conductor_version() -> str:
    """The installed conductor's version (what a keeper started now runs)."""
    try:
        return importlib.metadata.version("conductor")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
