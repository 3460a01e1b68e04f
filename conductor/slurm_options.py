"""Slurm's arithmetic on a job's size, shared by ``conductor submit`` (sbatch's options) and the
slurmrestd endpoints (job_desc_msg): node counts, tasks over nodes, GPUs from a gres, memory per CPU.

Pure: each caller reads its own input format and words its own errors (an option name for the
CLI, a field path for the REST API); the numbers are computed here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: sbatch's -N (and job_desc_msg's ``nodes``): "N", "N-M", or a range with a step "N-M:S".
_NODE_RANGE = re.compile(r"^\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?(?::[0-9]+)?\s*$")


def minimum_nodes(text: str) -> int:
    """The node count of ``-N N[-M]``: N, which is what conductor allocates.

    Raises ValueError for text that is not a count or a range, a count below 1, or M below N.
    """
    match = _NODE_RANGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a node count such as 1 or 1-4")
    low = int(match.group(1))
    if low < 1:
        raise ValueError(f"{text!r} must be at least 1")
    if match.group(2) is not None and int(match.group(2)) < low:
        raise ValueError(f"{text!r}: the maximum is below the minimum")
    return low


class TaskCountMismatch(ValueError):
    """Tasks, tasks per node and nodes were all given and do not multiply out."""

    def __init__(self, tasks: int, tasks_per_node: int, nodes: int) -> None:
        super().__init__(f"{tasks} tasks is not {tasks_per_node} tasks per node x {nodes} nodes")
        self.tasks, self.tasks_per_node, self.nodes = tasks, tasks_per_node, nodes


@dataclass(frozen=True)
class Layout:
    """How a job's tasks sit on its nodes."""

    nodes: int
    tasks_per_node: int


def layout(tasks: int | None, tasks_per_node: int | None, nodes: int | None) -> Layout:
    """Nodes and tasks per node from what was given of -n, --ntasks-per-node and -N, as Slurm does.

    Without a node count, the tasks need tasks / tasks_per_node nodes (rounded up), else one.
    Without tasks per node, the tasks are spread over the nodes (rounded up), else one each.
    With all three given they must agree (TaskCountMismatch).  Values below 1 are passed
    through unchanged for the caller's validation to refuse (nothing is divided by them).
    """
    if tasks is not None and tasks_per_node is not None and nodes is not None and tasks != tasks_per_node * nodes:
        raise TaskCountMismatch(tasks, tasks_per_node, nodes)
    if nodes is None:
        nodes = _ceil_div(tasks, tasks_per_node) if tasks is not None and tasks_per_node else 1
    if tasks_per_node is None:
        tasks_per_node = _ceil_div(tasks, nodes) if tasks is not None and nodes else 1
    return Layout(nodes=nodes, tasks_per_node=tasks_per_node)


def gpus_from_gres(gres: str) -> int | None:
    """``gpu:2`` or ``gpu:a100:2`` -> 2; None for anything else (another resource, no count)."""
    parts = gres.split(":")
    if parts[0] != "gpu" or len(parts) not in (2, 3) or not parts[-1].isdigit():
        return None
    return int(parts[-1])


def gpus_per_node(total_gpus: int, nodes: int) -> int:
    """sbatch's --gpus (for the whole job) as GPUs per node; ValueError unless they divide evenly."""
    if total_gpus % nodes:
        raise ValueError(f"{total_gpus} GPUs cannot be spread evenly over {nodes} nodes")
    return total_gpus // nodes


def memory_per_node_mb(memory_per_cpu_mb: int, cpus_per_task: int, tasks_per_node: int) -> int:
    """--mem-per-cpu as conductor's memory per node: times the CPUs of the job's tasks on one node."""
    return memory_per_cpu_mb * cpus_per_task * tasks_per_node


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
