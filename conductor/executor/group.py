"""A job's process group on its node: signals to all of it, and its memory."""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class MemoryWatch:
    """Samples the summed RSS of one process group; keeps the peak and the over-limit verdict.

    A sample walks the leader's descendants (the kernel's per-task ``children`` lists), which
    costs one read per process of the job.  Every ``FULL_SCAN_EVERY``-th sample scans all of
    /proc by group instead, so that a process of the group whose parent exited (reparented away
    from the script) is still counted, a few seconds later at most.
    """

    FULL_SCAN_EVERY = 8

    def __init__(self, pgid: int, limit_mb: int | None) -> None:
        self.pgid = pgid
        self.limit_kb = limit_mb * 1024 if limit_mb else None
        self.peak_kb = 0
        self.exceeded = False
        self._samples = 0

    def sample(self) -> bool:
        """Take one sample; True when the group is over its limit."""
        self._samples += 1
        full = self._samples % self.FULL_SCAN_EVERY == 0
        rss_kb = group_rss_kb(self.pgid) if full else descendants_rss_kb(self.pgid)
        self.peak_kb = max(self.peak_kb, rss_kb)
        self.exceeded = self.limit_kb is not None and rss_kb > self.limit_kb
        return self.exceeded


def group_rss_kb(pgid: int) -> int:
    """Sum of the resident memory (KiB) of every process in group ``pgid``.

    By group rather than by parentage, so that a child whose parent exited (reparented
    away from the script) still counts.  Field 24 of /proc/<pid>/stat is the same RSS as
    statm's and VmRSS; reading it from stat costs one open per process, not two.
    """
    pages = 0
    for name in os.listdir("/proc"):
        fields = _stat_fields(name) if name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid:  # field 5, pgrp
            pages += int(fields[21])  # field 24, rss in pages
    return pages * _PAGE_KB


def descendants_rss_kb(pgid: int) -> int:
    """Sum of the resident memory (KiB) of the group's leader and its descendants in the group.

    The scan of /proc instead where the kernel keeps no ``children`` lists (CONFIG_PROC_CHILDREN).
    """
    if not _has_children_lists():
        return group_rss_kb(pgid)
    pages, stack, seen = 0, [str(pgid)], set()
    while stack:
        pid = stack.pop()
        fields = _stat_fields(pid) if pid not in seen else None
        seen.add(pid)
        if fields is None:
            continue
        if int(fields[2]) == pgid:  # field 5, pgrp: a descendant that left the group is not the job's
            pages += int(fields[21])
        stack.extend(_children(pid))
    return pages * _PAGE_KB


def _children(pid: str) -> list[str]:
    """The pids of the children of every thread of ``pid`` (none when it has gone)."""
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found.extend(child.decode() for child in handle.read().split())
    except OSError:
        pass
    return found


@functools.cache
def _has_children_lists() -> bool:
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _stat_fields(pid: str) -> list[bytes] | None:
    """Fields 3 onwards of /proc/<pid>/stat; None when the process has gone."""
    # os.open/os.read rather than open(): a third of the cost, and this runs per process per sample.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    return stat.rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces or ')'


def terminate_group(pgid: int, pidfd: int, grace_s: float) -> None:
    """SIGTERM the whole group, give it ``grace_s``, then SIGKILL it (Slurm's KillWait)."""
    kill_group(pgid, signal.SIGCONT)
    kill_group(pgid, signal.SIGTERM)
    ready, _, _ = select.select([pidfd], [], [], grace_s)
    if not ready:
        kill_group(pgid, signal.SIGKILL)


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
