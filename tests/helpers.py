"""Test helpers: predicate waiting, Ray's per-node usage, job builders."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from conductor import jobs
from conductor.resources import Allocation, Node, Resources

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api_answers(url: str) -> bool:
    """Whether the API at ``url`` answers its health check with 200."""
    import httpx

    try:
        return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def ray_used_by_node() -> dict[str, Resources]:
    """ray_node_id -> CPUs, memory MB and GPUs in use, from Ray's own accounting."""
    from ray._private.state import available_resources_per_node, total_resources_per_node

    totals, available = total_resources_per_node(), available_resources_per_node()
    used = {}
    for node_id, total in totals.items():
        free = available.get(node_id, {})
        cpus = int(round(total.get("CPU", 0) - free.get("CPU", 0)))
        memory = int(round((total.get("memory", 0) - free.get("memory", 0)) / _MIB))
        gpus = int(round(total.get("GPU", 0) - free.get("GPU", 0)))
        used[node_id] = Resources(cpus, memory, gpus)
    return used


def spec(script: str, **fields: object) -> jobs.JobSpec:
    """A JobSpec with test defaults (working directory and user set); a script without ``#!`` gets
    ``#!/bin/bash`` first, as a submitted batch script must begin with one."""
    script = script if script.startswith("#!") else f"#!/bin/bash\n{script}"
    values: dict[str, object] = dict(script=script, name="test", user="tester", working_dir="/tmp")
    values.update(fields)
    return jobs.JobSpec(**values)  # type: ignore[arg-type]


def ray_used_by_node_nonzero() -> dict[str, Resources]:
    """ray_node_id -> what is in use, only for nodes where something is in use."""
    return {node_id: used for node_id, used in ray_used_by_node().items() if used != Resources()}


def node(name: str, cpus: int = 32, memory_mb: int = 65536, gpus: int = 0, labels: dict | None = None, *,
         ray_node_id: str | None = None) -> Node:
    """A Node as the scheduler would record it (its Ray id defaults to ``ray-<name>``)."""
    return Node(ray_node_id or f"ray-{name}", name, Resources(cpus, memory_mb, gpus), labels or {})


def allocation(job_id: int, cpus: int, memory_mb: int = 0, *nodes: Node) -> Allocation:
    """An allocation of ``cpus`` and ``memory_mb`` per node on ``nodes`` (default: one node n1)."""
    return Allocation(job_id, nodes or (node("n1"),), Resources(cpus, memory_mb))


#: How long Ray's reported per-node usage may trail a lease being granted or returned.
RAY_VIEW_LAG_S = 0.5


class AllocationSampler:
    """Invariant 3, sampled: unreleased allocation rows per node against Ray's usage per node.

    Every sample checks that the rows never exceed a node's total.  A sample is *quiet* when no
    job is between its allocation row and its script starting, or between its script ending and
    the release being committed; at quiet samples rows and Ray's usage must be equal.  Jobs show
    this through marker files in ``markers``: ``started-<id>`` (touched by the script when it
    starts) and ``ended-<id>`` (touched by the script, or by the test before it ends the job).
    """

    def __init__(self, repository: object, markers: Path, lag_s: float = RAY_VIEW_LAG_S) -> None:
        self.repository, self.markers, self.lag_s = repository, markers, lag_s
        self.node_total = {n.ray_node_id: n.capacity for n in repository.nodes()}
        self._held_since, self._last_held = time.monotonic(), None

    def _held(self) -> set[int]:
        return {allocation.job_id for allocation in self.repository.unreleased_allocations()}

    def _started_long_ago(self, job_id: int) -> bool:
        try:
            return time.time() - (self.markers / f"started-{job_id}").stat().st_mtime > self.lag_s
        except FileNotFoundError:
            return False

    def sample(self) -> dict:
        """One sample: {"quiet", "db", "ray", "jobs"}; fails the test if rows exceed a node's total."""
        before, held_before = self.repository.unreleased_by_node(), self._held()
        if held_before != self._last_held:  # Ray's resource view lags its raylets: wait for it to settle
            self._held_since, self._last_held = time.monotonic(), held_before
        started = {i for i in held_before if self._started_long_ago(i)}
        settled = time.monotonic() - self._held_since > self.lag_s
        ray_used = ray_used_by_node_nonzero()
        ended = {i for i in held_before if (self.markers / f"ended-{i}").exists()}
        after, held_after = self.repository.unreleased_by_node(), self._held()
        for node_id, held in after.items():
            assert held.fits_in(self.node_total[node_id]), f"node {node_id} over its total: {after}"
        quiet = settled and before == after and held_before == held_after and started == held_before and not ended
        return {"quiet": quiet, "db": after, "ray": ray_used, "jobs": sorted(held_after)}


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def process_tree(root_pid: int) -> set[int]:
    """``root_pid`` and every live descendant of it (from /proc; no psutil)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid not in tree and pid_alive(pid):
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MiB (VmRSS from /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def conductor_up(env: dict[str, str], state: Path, port: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real ``conductor up`` in its own session, logging to ``state/up.log``: (its URL, the process)
    once the API answers; SIGTERMed afterwards (SIGKILL to its group after 60 s), by its pid."""
    log = open(state / "up.log", "w")
    process = subprocess.Popen([str(Path(sys.executable).with_name("conductor")), "up"], env=env, cwd=state,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: api_answers(url) or process.poll() is not None, 120, interval_s=0.5)
        assert process.poll() is None, (state / "up.log").read_text()
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
