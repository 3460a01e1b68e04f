"""A node's keeper, from the scheduler's side: its name, and get-or-create pinned to its node."""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from conductor.resources import Node

PREFIX = "conductor-keeper-"
#: How many calls a keeper serves at once (stops being delivered, the scheduler's long poll...).
MAX_CONCURRENCY = 10_000


def name_of(node_name: str) -> str:
    return f"{PREFIX}{node_name}"


def get_or_create(namespace: str, node: Node) -> Any:
    """The node's keeper actor: detached, named, 0 CPUs, pinned to the node, restarted when it dies."""
    from conductor.keeper.actor import Keeper

    return ray.remote(Keeper).options(
        name=name_of(node.name), namespace=namespace, lifetime="detached", get_if_exists=True, num_cpus=0,
        max_restarts=-1, max_task_retries=0, max_concurrency=MAX_CONCURRENCY,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node.ray_node_id, soft=False),
    ).remote(node.name)


def names_in(namespace: str) -> list[str]:
    """Every keeper actor of this conductor cluster (Ray namespace), alive or restarting."""
    return sorted(actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
                  if actor["namespace"] == namespace and actor["name"].startswith(PREFIX))


def kill_all(namespace: str) -> int:
    """Kill every keeper of the namespace for good (their tasks die with them); how many."""
    killed = 0
    for name in names_in(namespace):
        try:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
            killed += 1
        except ValueError:  # gone meanwhile
            pass
    return killed
