"""Node discovery: Ray's alive nodes as conductor sees them (name, CPUs, memory, GPUs, labels)."""

from __future__ import annotations

from dataclasses import dataclass, field

import ray

from conductor import partitions

#: A node label that names the node for conductor (overrides Ray's NodeName).
NODE_NAME_LABEL = "conductor.io/node-name"
#: A node label that puts the node in a partition (ray start --labels conductor.io/partition=gpu).
PARTITION_LABEL = partitions.PARTITION_LABEL
_MIB = 1024 * 1024


@dataclass(frozen=True)
class RayNode:
    """An alive Ray node's totals.  Memory is Ray's logical ``memory`` resource."""

    ray_node_id: str
    name: str
    total_cpus: int
    total_memory_mb: int
    total_gpus: int = 0
    labels: dict = field(default_factory=dict)


def alive_nodes(*, local_node_id: str = "", local_name: str = "") -> list[RayNode]:
    """Every alive Ray node; the node with ``local_node_id`` is called ``local_name``."""
    found = []
    for info in ray.nodes():
        if not info.get("Alive"):
            continue
        found.append(_to_node(info, local_node_id, local_name))
    return _unique_names(found)


def _to_node(info: dict, local_node_id: str, local_name: str) -> RayNode:
    resources = info.get("Resources", {})
    labels = dict(info.get("Labels") or {})
    node_id = info["NodeID"]
    name = labels.get(NODE_NAME_LABEL) or (local_name if node_id == local_node_id and local_name else "")
    return RayNode(
        ray_node_id=node_id,
        name=name or info.get("NodeName") or node_id[:12],
        total_cpus=int(resources.get("CPU", 0)),
        total_memory_mb=int(resources.get("memory", 0) // _MIB),
        total_gpus=int(resources.get("GPU", 0)),
        labels={k: v for k, v in labels.items() if not k.startswith("ray.io/")},
    )


def _unique_names(nodes: list[RayNode]) -> list[RayNode]:
    """Several Ray nodes on one host share an IP NodeName: suffix all but the first with the node id."""
    seen: set[str] = set()
    result = []
    for node in sorted(nodes, key=lambda n: (n.name, n.ray_node_id)):
        if node.name in seen:
            node = RayNode(node.ray_node_id, f"{node.name}-{node.ray_node_id[:8]}", node.total_cpus,
                           node.total_memory_mb, node.total_gpus, node.labels)
        seen.add(node.name)
        result.append(node)
    return result
