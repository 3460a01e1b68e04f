"""A job's process group on its node: signals, its memory, and its pgid file.

While a job runs its group id is in ``<tmp>/conductor-run/<job_id>.pgid``, so that
``signal_job`` (another task on the same node) can signal it without ending it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import tempfile
from typing import Iterator

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class MemoryWatch:
    """Samples the summed RSS of one process group; keeps the peak and the over-limit verdict."""

    def __init__(self, pgid: int, limit_mb: int | None) -> None:
        self.pgid = pgid
        self.limit_kb = limit_mb * 1024 if limit_mb else None
        self.peak_kb = 0
        self.exceeded = False

    def sample(self) -> bool:
        """Take one sample; True when the group is over its limit."""
        rss_kb = group_rss_kb(self.pgid)
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


def signal_job(job_id: int, signum: int) -> bool:
    """Send ``signum`` to every process of job ``job_id`` running on this node, without ending it.

    Returns False when no such job runs here (no pgid file, or a stale one whose group
    is gone).  Must run on the job's node: the pgid file is per node.
    """
    try:
        with open(_pgid_path(job_id), encoding="ascii") as handle:
            pgid = int(handle.read())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):  # PermissionError: the id now belongs to someone else
        return False
    return True


def _pgid_path(job_id: int) -> str:
    return os.path.join(tempfile.gettempdir(), "conductor-run", f"{job_id}.pgid")


@contextlib.contextmanager
def pgid_recorded(job_id: int, pgid: int) -> Iterator[None]:
    """Keep the job's group id in its pgid file for the duration of the block."""
    path = _pgid_path(job_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}"
    with open(partial, "w", encoding="ascii") as handle:
        handle.write(str(pgid))
    os.replace(partial, path)  # signal_job never reads a half-written file
    try:
        yield
    finally:
        # Only our own: a later attempt of the same job on this node may have replaced it.
        with contextlib.suppress(OSError, ValueError):
            with open(path, encoding="ascii") as handle:
                ours = int(handle.read()) == pgid
            if ours:
                os.remove(path)
