"""The memory sampler's two ways of summing a job's group: its descendants, and the /proc scan."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conductor.executor import group
from tests.helpers import wait_for

#: A group of three: the leader, a child holding 40 MiB, and a grandchild whose parent exited
#: (it is reparented away from the leader, but stays in the group).
TREE = ("python3 -c 'import time; x = bytearray(40 << 20); x[::4096] = b\"x\" * len(x[::4096]); time.sleep(30)' &\n"
        "( python3 -c 'import time; y = bytearray(40 << 20); y[::4096] = b\"y\" * len(y[::4096]); time.sleep(30)' & )\n"
        "echo started > {marker}\nwait\n")


def _tree(tmp_path: Path) -> subprocess.Popen:
    marker = tmp_path / "started"
    process = subprocess.Popen(["bash", "-c", TREE.format(marker=marker)], start_new_session=True)
    wait_for(marker.exists, 10, message="the tree to start")
    wait_for(lambda: group.group_rss_kb(process.pid) > 80 * 1024, 10, message="both children to touch their pages")
    return process


def test_descendants_count_the_children_and_not_a_reparented_process(tmp_path: Path) -> None:
    process = _tree(tmp_path)
    try:
        whole = group.group_rss_kb(process.pid)
        descendants = group.descendants_rss_kb(process.pid)
        # The reparented one is missing.  (Bounds below 40 MiB: a loaded host may reclaim a few pages.)
        assert 30 * 1024 < descendants < whole, (descendants, whole)
        assert whole - descendants > 25 * 1024
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_periodic_full_scan_finds_the_reparented_process(tmp_path: Path) -> None:
    process = _tree(tmp_path)
    try:
        watch = group.MemoryWatch(process.pid, limit_mb=60)
        verdicts = [watch.sample() for _ in range(group.MemoryWatch.FULL_SCAN_EVERY)]
        assert verdicts[:-1] == [False] * (group.MemoryWatch.FULL_SCAN_EVERY - 1)  # ~40 MiB each: under 60
        assert verdicts[-1] is True and watch.peak_kb > 80 * 1024  # the full scan sums the whole group
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_descendant_walk_costs_less_than_the_scan(tmp_path: Path) -> None:
    """Not a timing assertion: the walk opens files of the job's processes only."""
    process = subprocess.Popen(["sleep", "5"], start_new_session=True)
    try:
        wait_for(lambda: group.group_rss_kb(process.pid) > 0, 5, message="sleep to be exec'd")
        opened: list[str] = []
        real_open = os.open

        def counting_open(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            opened.append(str(path))
            return real_open(path, *args, **kwargs)

        os.open = counting_open  # type: ignore[assignment]
        try:
            assert group.descendants_rss_kb(process.pid) > 0
        finally:
            os.open = real_open  # type: ignore[assignment]
        assert opened == [f"/proc/{process.pid}/stat"]
    finally:
        process.kill()
        process.wait()
