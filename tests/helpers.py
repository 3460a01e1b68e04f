"""Test helpers: predicate waiting, Ray's per-node usage, job builders."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from conductor import jobs

T = TypeVar("T")
_MIB = 1024 * 1024


def wait_for(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05, message: str = "") -> T:
    """Return the predicate's first truthy value; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {message or predicate}")
        time.sleep(interval_s)


def ray_used_by_node() -> dict[str, tuple[float, int]]:
    """ray_node_id -> (CPUs in use, memory MB in use), from Ray's own accounting."""
    from ray._private.state import available_resources_per_node, total_resources_per_node

    totals, available = total_resources_per_node(), available_resources_per_node()
    used = {}
    for node_id, total in totals.items():
        free = available.get(node_id, {})
        cpus = total.get("CPU", 0) - free.get("CPU", 0)
        memory = int(round((total.get("memory", 0) - free.get("memory", 0)) / _MIB))
        used[node_id] = (cpus, memory)
    return used


def spec(script: str, **fields: object) -> jobs.JobSpec:
    """A JobSpec with test defaults (working directory and user set)."""
    values: dict[str, object] = dict(script=script, name="test", user="tester", working_dir="/tmp")
    values.update(fields)
    return jobs.JobSpec(**values)  # type: ignore[arg-type]
