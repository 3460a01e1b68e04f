"""Node discovery: Ray's alive nodes as conductor's Nodes (name, capacity, labels, partitions)."""

from __future__ import annotations

import asyncio
from typing import Sequence

import ray

from conductor import partitions as partition_config
from conductor.partitions import Partition
from conductor.resources import NODE_NAME_LABEL, Allocation, Node, Resources

_MIB = 1024 * 1024
#: How often a job whose worker died checks whether its node died too.
DEATH_POLL_S = 0.5
#: The resource Ray gives its head node only.
HEAD_RESOURCE = "node:__internal_head__"


def alive_nodes(configured: Sequence[Partition], *, local_node_id: str = "", local_name: str = "") -> list[Node]:
    """Every alive Ray node; the node with ``local_node_id`` is called ``local_name``.

    Memory is Ray's logical ``memory`` resource; a node's partitions come from the configuration
    (by name, or by its ``conductor.io/partition`` label).
    """
    found = [_to_node(info, local_node_id, local_name) for info in ray.nodes() if info.get("Alive")]
    return [Node(n.ray_node_id, n.name, n.capacity, n.labels,
                 partition_config.memberships(configured, n.name, n.labels)) for n in _unique_names(found)]


def head_ids() -> set[str]:
    """The Ray head node (its ``node:__internal_head__`` resource), whose keeper is never retired."""
    return {info["NodeID"] for info in ray.nodes()
            if info.get("Alive") and HEAD_RESOURCE in info.get("Resources", {})}


def alive_ids() -> set[str]:
    return {info["NodeID"] for info in ray.nodes() if info.get("Alive")}


async def lost_node_of(allocation: Allocation, grace_s: float) -> str:
    """The name of a node of ``allocation`` that Ray reports dead within ``grace_s``, else ""."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while True:
        alive = alive_ids()
        lost = [node.name for node in allocation.nodes if node.ray_node_id not in alive]
        if lost:
            return lost[0]
        if loop.time() >= deadline:
            return ""
        await asyncio.sleep(DEATH_POLL_S)


def _to_node(info: dict, local_node_id: str, local_name: str) -> Node:
    resources = info.get("Resources", {})
    labels = dict(info.get("Labels") or {})
    node_id = info["NodeID"]
    name = labels.get(NODE_NAME_LABEL) or (local_name if node_id == local_node_id and local_name else "")
    capacity = Resources(int(resources.get("CPU", 0)), int(resources.get("memory", 0) // _MIB),
                         int(resources.get("GPU", 0)))
    return Node(node_id, name or info.get("NodeName") or node_id[:12], capacity,
                {k: v for k, v in labels.items() if not k.startswith("ray.io/")})


def _unique_names(nodes: list[Node]) -> list[Node]:
    """Several Ray nodes on one host share an IP NodeName: suffix all but the first with the node id."""
    seen: set[str] = set()
    result = []
    for node in sorted(nodes, key=lambda n: (n.name, n.ray_node_id)):
        if node.name in seen:
            node = Node(node.ray_node_id, f"{node.name}-{node.ray_node_id[:8]}", node.capacity, node.labels)
        seen.add(node.name)
        result.append(node)
    return result
